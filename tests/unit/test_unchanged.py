"""The settings hash skip_if_unchanged compares: names, outputs and evaluation settings leave it
alone; anything that changes the trained weights changes it."""

from __future__ import annotations

import pytest

from trainer.config.loading import load_settings
from trainer.config.settings import Settings
from trainer.stages.unchanged import NOT_TRAINING, training_hash

# The hash reads the base model's folder: the tiny model, built once for the session.
pytestmark = pytest.mark.usefixtures("tiny_model_dir")

BASE = ["max_steps=4"]


def _hash(*sets: str) -> str:
    return training_hash(load_settings("demo", None, [*BASE, *sets]))


@pytest.mark.parametrize(
    "change",
    [
        "element_name=Another name",
        "skip_if_unchanged=true",
        "num_sample_generations=7",
        "promotion_metric=eval_rouge_l",
        "artifact_backup_save_path=/tmp/elsewhere",
        "save_every_n_iterations=3",
        "max_new_tokens=9",
    ],
)
def test_names_outputs_and_evaluation_leave_the_hash_alone(change):
    assert _hash(change) == _hash()


@pytest.mark.parametrize(
    "change",
    [
        "learning_rate=0.0003",
        "max_steps=5",
        "lora_rank=4",
        "random_seed=7",
        "max_seq_length=256",
        "trained_artifact=models:/other@champion",
        "eval_fraction=0.2",
    ],
)
def test_a_setting_that_changes_training_changes_the_hash(change):
    assert _hash(change) != _hash()


def test_every_left_out_setting_exists():
    # A renamed setting left in NOT_TRAINING would silently count as training again: keep the list true.
    assert set(Settings.model_fields) >= NOT_TRAINING


def test_the_eval_data_content_counts(tmp_path):
    data = tmp_path / "eval"
    data.mkdir()
    (data / "a.jsonl").write_text('{"text": "one"}\n')
    before = _hash(f"eval_data_path={data}")
    (data / "a.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    assert _hash(f"eval_data_path={data}") != before


def test_the_base_model_folders_content_counts_not_only_its_path(tmp_path, tiny_model_dir):
    """An edited chat template at the same path changes every training sequence: it is a change."""
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    before = _hash(f"base_model_assets_path={base}")
    assert _hash(f"base_model_assets_path={base}") == before  # stable
    template = base / "chat_template.jinja"
    template.write_text(template.read_text().replace("<|start|>", "<|start|> "))
    assert _hash(f"base_model_assets_path={base}") != before


def test_a_local_trained_artifacts_content_counts(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    before = _hash(f"trained_artifact={adapter}")
    (adapter / "adapter_model.safetensors").write_bytes(b"\x01" * 64)  # same size, same path
    assert _hash(f"trained_artifact={adapter}") != before
