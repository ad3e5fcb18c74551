"""The model lifecycle on real Prefect, MLflow (sqlite) and training on the tiny model.

Three flow runs of one registered model, sharing one set-up (each test reads what it needs):
  A  a fresh adapter                         -> version 1, champion (first version), merged export
  B  trained_artifact=models:/NAME@champion  -> version 2, warm start from 1, better -> champion
  C  trained_artifact=models:/NAME/1, LR 0.5 -> version 3, worse -> stays challenger; its register
     step fails once after the version was created (an injected crash) and is retried; backed up
     to memory://
All three run with sentinel secrets in the environment, which the secrets test then looks for in
the whole MLflow store, the run folders, the backups and every log line.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from tests.cli import invoke, run_process
from tests.conftest import DEMO_DATA, write_jsonl
from trainer.config import state
from trainer.config.loading import load_settings

pytestmark = pytest.mark.slow  # trains the tiny model or runs the flow

NAME = "lc-model"
SETS = [
    "max_steps=4",
    "save_every_n_iterations=2",
    "num_sample_generations=2",
    "max_new_tokens=8",
    f"registered_model_name={NAME}",
    "element_name=Lifecycle Test",
]
SENTINELS = {
    "HF_TOKEN": "hf_SENTINEL7c1e9aTOKEN",
    "AWS_SECRET_ACCESS_KEY": "aws-SENTINEL-4b2d-secret",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-SENTINEL-9f3a-password",
}
PROMPTS = ["My order has not arrived yet, can you help?", "How do I reset my password?"]


def cli(*args):
    return invoke(*args, columns=250)  # in this process: the registry commands' output and exit codes


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(record.getMessage())
        except Exception:
            self.lines.append(str(record.msg))


@pytest.fixture(scope="module")
def lifecycle(prefect_server, tiny_model_dir):
    from flows import pipeline
    from tasks.register import register_model
    from trainer import registry

    patch = pytest.MonkeyPatch()
    capture = _Capture()
    loggers = [logging.getLogger(), logging.getLogger("prefect"), logging.getLogger("llm_trainer")]
    for logger in loggers:
        logger.addHandler(capture)
    memory_backups = f"memory://lc-backups-{uuid.uuid4().hex[:8]}"
    injected = []
    try:
        for key, value in SENTINELS.items():
            patch.setenv(key, value)
        a = pipeline.llm_trainer(load_settings("demo", None, SETS + ["export_merged=true"]))
        b = pipeline.llm_trainer(
            load_settings("demo", None, SETS + [f"trained_artifact=models:/{NAME}@champion", "max_steps=8"])
        )

        real_set_version_tags = registry.set_version_tags

        def crash_once(name, version, tags):
            if not injected:
                injected.append(version)
                raise ConnectionError("injected: the tracking server went away after the version was registered")
            return real_set_version_tags(name, version, tags)

        patch.setattr(registry, "set_version_tags", crash_once)
        patch.setattr(pipeline, "register_model", register_model.with_options(retry_delay_seconds=0))
        c = pipeline.llm_trainer(
            load_settings(
                "demo",
                None,
                SETS
                + [
                    f"trained_artifact=models:/{NAME}/1",
                    "learning_rate=0.5",
                    f"artifact_backup_save_path={memory_backups}",
                ],
            )
        )
    finally:
        patch.undo()
        for logger in loggers:
            logger.removeHandler(capture)
    mlflow.set_tracking_uri(state.tracking_uri())
    return {
        "a": a,
        "b": b,
        "c": c,
        "logs": capture.lines,
        "injected": injected,
        "client": MlflowClient(state.tracking_uri()),
    }


def _logits(model, tokenizer, text: str):
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**ids, use_cache=False).logits


def test_first_version_is_champion_and_the_merged_export_matches(lifecycle, tiny_model_dir):
    from trainer.model.loading import load_adapter, load_base_model, load_tokenizer
    from trainer.model.runtime import pick_runtime

    a = lifecycle["a"]
    assert a.model_version == "1" and set(a.aliases) == {"challenger", "champion"}
    assert "first version" in a.promotion and a.lineage == {}
    assert "base_eval_loss" in a.eval_metrics and "champion_eval_loss" not in a.eval_metrics
    merged = Path(a.merged_dir)
    assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()
    # Merged into the full-precision base: the same function as that base with the adapter on top.
    from transformers import AutoModelForCausalLM

    adapter = Path(lifecycle["client"].get_run(a.mlflow_run_id).data.tags["output_dir"]) / "adapter"
    tokenizer = load_tokenizer(adapter)
    unmerged = load_adapter(load_base_model(tiny_model_dir, None, pick_runtime(None)), adapter, trainable=False).eval()
    reloaded = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    assert torch.allclose(_logits(unmerged, tokenizer, PROMPTS[0]), _logits(reloaded, tokenizer, PROMPTS[0]), atol=1e-4)
    assert lifecycle["client"].get_model_version(NAME, "1").tags["promotion_decision"] == "promoted"


def test_resume_from_the_champion_alias_records_lineage_and_promotes_a_better_version(lifecycle):
    a, b, client = lifecycle["a"], lifecycle["b"], lifecycle["client"]
    expected = {
        "parent_model": NAME,
        "parent_version": "1",
        "parent_run_id": a.mlflow_run_id,
        "parent_alias": "champion",
    }
    assert expected.items() <= b.lineage.items() and b.lineage["parent_kind"] == "adapter"
    run_tags = client.get_run(b.mlflow_run_id).data.tags
    version = client.get_model_version(NAME, "2")
    for key, value in expected.items():
        assert run_tags[key] == value and version.tags[key] == value
    # The champion was scored on this run's rows: its score there is version 1's own eval score.
    assert b.eval_metrics["champion_eval_loss"] == pytest.approx(a.eval_metrics["eval_loss"], abs=1e-9)
    assert b.eval_metrics["eval_loss"] < b.eval_metrics["champion_eval_loss"] < b.eval_metrics["base_eval_loss"]
    assert b.model_version == "2" and set(b.aliases) == {"challenger", "champion"}
    assert version.tags["promotion_decision"] == "promoted" and version.tags["promotion_compared_with"] == "1"
    assert version.tags["champion_previous"] == "1" and "better by" in version.tags["champion_reason"]
    for key in (
        "data_fingerprint",
        "contract_version",
        "settings_hash",
        "eval_loss",
        "base_eval_loss",
        "champion_eval_loss",
    ):
        assert version.tags[key], key


def test_resume_from_a_version_number_worse_is_not_promoted_and_a_retry_registers_once(lifecycle):
    c, client = lifecycle["c"], lifecycle["client"]
    assert lifecycle["injected"] == ["3"]  # the register step did crash after creating version 3
    assert [str(v.version) for v in client.search_model_versions(f"run_id = '{c.mlflow_run_id}'")] == ["3"]
    assert sorted(int(v.version) for v in client.search_model_versions(f"name = '{NAME}'")) == [1, 2, 3]
    assert c.lineage["parent_version"] == "1" and "parent_alias" not in c.lineage
    assert c.eval_metrics["eval_loss"] > c.eval_metrics["champion_eval_loss"]
    assert c.aliases == ["challenger"] and "the champion stays" in c.promotion
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "3"
    tags = client.get_model_version(NAME, "3").tags
    assert tags["promotion_decision"] == "kept_champion" and tags["promotion_compared_with"] == "2"


def test_each_run_ends_with_a_report_a_loss_curve_and_a_sample_table(lifecycle):
    from prefect.artifacts import Artifact

    b, client = lifecycle["b"], lifecycle["client"]
    run = client.get_run(b.mlflow_run_id)
    assert run.info.status == "FINISHED"
    local = Path(mlflow.artifacts.download_artifacts(run_id=b.mlflow_run_id, artifact_path="report"))
    assert (local / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    report = (local / "run_report.md").read_text()
    assert (
        "| eval_loss |" in report and "champion v1" in report and "base model" in report and b.backup_location in report
    )
    table = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(run_id=b.mlflow_run_id, artifact_path="eval/sample_generations.json")
        ).read_text()
    )
    # One row per generated answer (eval_generation_rows: 16 in the demo preset), each scored against its reference
    # for the new version, the base and the champion.
    scored = ["output", "exact_match", "rouge_l"]
    assert table["columns"] == [
        "prompt",
        "reference",
        *scored,
        *(f"{who}_{c}" for who in ("base", "champion") for c in scored),
    ]
    assert len(table["data"]) == min(16, int(run.data.metrics["eval_rows"]))
    rouge = table["columns"].index("rouge_l")
    assert all(0.0 <= row[rouge] <= 1.0 for row in table["data"])
    artifact = Artifact.get("run-report")
    assert artifact is not None and "# Run `" in artifact.data


def test_pyfunc_round_trip_gives_the_same_logits(lifecycle, tiny_model_dir):
    from trainer.model.loading import load_adapter, load_base_model, load_tokenizer
    from trainer.model.runtime import pick_runtime

    b = lifecycle["b"]
    adapter = Path(lifecycle["client"].get_run(b.mlflow_run_id).data.tags["output_dir"]) / "adapter"
    tokenizer = load_tokenizer(adapter)
    before = load_adapter(load_base_model(tiny_model_dir, 4, pick_runtime(4)), adapter, trainable=False).eval()
    served = mlflow.pyfunc.load_model(f"models:/{NAME}/2")
    after = served.unwrap_python_model().model
    assert torch.equal(_logits(before, tokenizer, PROMPTS[0]), _logits(after, tokenizer, PROMPTS[0]))
    assert len(served.predict(PROMPTS, params={"max_new_tokens": 4})) == 2


def test_compare_and_promote_from_the_command_line(lifecycle):
    client = lifecycle["client"]
    result = cli("compare", "--model", NAME)
    assert result.returncode == 0, result.stderr
    for needle in (
        "v3",
        "v2",
        "v1",
        "champion",
        "challenger",
        "learning_rate",
        "trained_artifact",
        "eval_loss",
        "champion_eval_loss",
    ):
        assert needle in result.stdout, needle
    runs = cli("compare", "--runs", f"{lifecycle['a'].mlflow_run_id},{lifecycle['b'].mlflow_run_id}", "--json")
    table = json.loads(runs.stdout)
    assert table["columns"] == [lifecycle["a"].mlflow_run_id[:8], lifecycle["b"].mlflow_run_id[:8]]
    assert table["rows"]["max_steps"] == ["4", "8"] and table["rows"]["parent_version"] == ["—", "1"]

    promoted = cli("promote", NAME, "3", "--reason", "rollback drill")
    assert promoted.returncode == 0 and "champion -> version 3 (was 2)" in promoted.stdout, promoted.stderr
    tags = client.get_model_version(NAME, "3").tags
    assert (
        tags["champion_reason"] == "rollback drill"
        and tags["champion_previous"] == "2"
        and tags["champion_set_by"].startswith("manual")
    )
    assert cli("promote", NAME, "2", "--reason", "back").returncode == 0
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    missing = cli("promote", NAME, "99")
    assert missing.returncode == 1 and f"{NAME} version 99: not in the model registry" in missing.stderr


def _same_model(restored_dir: Path, registered_uri: str) -> None:
    restored = mlflow.pyfunc.load_model(str(restored_dir))
    registered = mlflow.pyfunc.load_model(registered_uri)
    r, g = restored.unwrap_python_model(), registered.unwrap_python_model()
    assert torch.equal(_logits(r.model, r.tokenizer, PROMPTS[1]), _logits(g.model, g.tokenizer, PROMPTS[1]))
    assert restored.predict(PROMPTS, params={"max_new_tokens": 8}) == registered.predict(
        PROMPTS, params={"max_new_tokens": 8}
    )


def test_backup_restores_without_mlflow_from_a_local_path_and_from_memory(lifecycle, tmp_path):
    from trainer.storage.backup import verify
    from trainer.storage.restore import restore

    b, c = lifecycle["b"], lifecycle["c"]
    manifest = verify(b.backup_location)
    for key in (
        "adapter/adapter_model.safetensors",
        "adapter/tokenizer.json",
        "checkpoint/optimizer.pt",
        "settings/settings.yaml",
        "eval/eval_report.json",
        "eval/loss_curve.png",
        "data/validation_report.json",
        "model/base_reference.json",
    ):
        assert key in manifest.files and manifest.files[key]["bytes"] > 0, key
    assert manifest.metadata["version"] == "2" and manifest.metadata["parent_version"] == "1"

    local = restore(b.backup_location, tmp_path / "from-local")
    _same_model(local.model_dir, f"models:/{NAME}/2")
    assert c.backup_location.startswith("memory://")
    memory = restore(c.backup_location, tmp_path / "from-memory")
    _same_model(memory.model_dir, f"models:/{NAME}/3")

    # Re-registered (as if the store had been lost, under another name): version 1 of an empty
    # model becomes its champion, and restoring the same backup again registers nothing new.
    again = restore(b.backup_location, tmp_path / "register", register=True, name="lc-restored")
    assert again.registered_version == "1" and "champion" in again.aliases
    assert (
        restore(b.backup_location, tmp_path / "register", register=True, name="lc-restored").registered_version == "1"
    )
    tags = lifecycle["client"].get_model_version("lc-restored", "1").tags
    assert (
        tags["restored_from"] == b.backup_location
        and tags["restored_from_version"] == "2"
        and tags["parent_version"] == "1"
    )
    _same_model(again.model_dir, "models:/lc-restored@champion")
    # The restored checkpoint continues training: it is a complete checkpoint with its lineage.
    from trainer.registry.lineage import resolve_artifact

    artifact = resolve_artifact(str(local.files_dir / "checkpoint"))
    assert artifact.kind == "checkpoint" and artifact.lineage["parent_run_id"] == b.mlflow_run_id


def test_a_sigterm_during_restore_leaves_the_previous_restore_as_it_was_and_nothing_half_written(lifecycle, tmp_path):
    """A real `llm-trainer restore` process gets SIGTERM while it builds the model folder: it exits
    143, the destination's earlier restore is untouched and loads, and no staging folder is left."""
    import os

    from tests.faults import inject as faults

    location, destination = lifecycle["b"].backup_location, tmp_path / "restored"
    assert run_process("restore", location, "--to", destination, timeout=600).returncode == 0
    before = {p.relative_to(destination): p.read_bytes() for p in destination.rglob("*") if p.is_file()}
    env = faults.env(dict(os.environ), signal_name="TERM", signal_in="trainer.registry.pyfunc:save_adapter_model")
    interrupted = run_process("restore", location, "--to", destination, timeout=600, env=env)
    assert interrupted.returncode == 143, interrupted.stderr[-3000:]
    assert "Traceback" not in interrupted.stderr
    after = {p.relative_to(destination): p.read_bytes() for p in destination.rglob("*") if p.is_file()}
    assert after == before and not list(destination.glob(".restore-staging-*"))
    _same_model(destination / "model", f"models:/{NAME}/2")


def test_a_corrupted_or_incomplete_backup_is_refused(lifecycle, tmp_path):
    from trainer.errors import BackupError
    from trainer.storage.restore import restore

    copy = tmp_path / "backup"
    shutil.copytree(lifecycle["b"].backup_location, copy)
    weights = copy / "adapter" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, one bit pattern changed
    weights.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"incomplete backup, 1 changed: adapter/adapter_model.safetensors \(sha256"):
        restore(str(copy), tmp_path / "out")
    (copy / "eval" / "eval_report.json").unlink()
    result = cli("restore", str(copy), "--to", str(tmp_path / "out-cli"))
    assert (
        result.returncode == 1 and "1 missing: eval/eval_report.json" in result.stderr and "1 changed" in result.stderr
    )
    assert not (tmp_path / "out-cli" / "model").exists()


def test_no_secret_reaches_params_tags_artifacts_files_or_logs(lifecycle):
    import fsspec

    assert lifecycle["logs"], "the log capture saw nothing"
    sentinels = [v.encode() for v in SENTINELS.values()]
    scanned = 0
    for path in state.state_dir().rglob("*"):  # mlflow.db, mlartifacts/, runs/ (run folders), backups/
        if path.is_file():
            content = path.read_bytes()
            scanned += 1
            assert not any(s in content for s in sentinels), f"a secret leaked into {path}"
    assert scanned > 100
    fs, root = fsspec.core.url_to_fs(lifecycle["c"].backup_location)
    for path in fs.find(root):
        assert not any(s in fs.cat_file(path) for s in sentinels), f"a secret leaked into {path}"
    client = lifecycle["client"]
    for key in ("a", "b", "c"):
        run = client.get_run(lifecycle[key].mlflow_run_id)
        text = json.dumps(
            [run.data.params, run.data.tags, client.get_model_version(NAME, lifecycle[key].model_version).tags]
        )
        assert not any(s.decode() in text for s in sentinels)
    for line in lifecycle["logs"]:
        assert not any(s.decode() in line for s in sentinels), line
    # Prefect's database (flow-run parameters, logs, artifacts) and its write-ahead log. The full
    # check, with a password in MLFLOW_TRACKING_URI and a real MLflow server: tests/e2e/test_trust_secrets.py.
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    database = Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    files = list(database.parent.glob(f"{database.name}*"))
    assert database in files
    for path in files:
        assert not any(s in path.read_bytes() for s in sentinels), f"a secret leaked into {path}"


def test_an_incompatible_artifact_is_refused_naming_both_sides(lifecycle, tiny_model_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from trainer.errors import SettingsError
    from trainer.registry.lineage import resolve_artifact

    settings = load_settings("demo", None, [])
    source = Path(lifecycle["client"].get_run(lifecycle["a"].mlflow_run_id).data.tags["output_dir"]) / "adapter"
    other_arch = tmp_path / "mistral-adapter"
    shutil.copytree(source, other_arch)
    yaml_file = other_arch / "llm_trainer_settings.yaml"
    yaml_file.write_text(
        yaml_file.read_text().replace("base_model_architecture: tiny-llama", "base_model_architecture: mistral-7b")
    )
    with pytest.raises(
        SettingsError, match=r"trained on mistral-7b \(tokenizer [0-9a-f]{12}\), this run uses tiny-llama"
    ):
        resolve_artifact(str(other_arch), settings, tiny_model_dir)

    other_tokenizer = tmp_path / "other-tokenizer-adapter"
    shutil.copytree(source, other_tokenizer)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (other_tokenizer / name).unlink(missing_ok=True)
    raw = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", eos_token="world").save_pretrained(other_tokenizer)
    with pytest.raises(
        SettingsError,
        match=r"trained on tiny-llama \(tokenizer ([0-9a-f]{12})\), this run uses tiny-llama .* \(tokenizer "
        r"(?!\1)[0-9a-f]{12}\)",
    ):
        resolve_artifact(str(other_tokenizer), settings, tiny_model_dir)
    with pytest.raises(SettingsError, match=f"{NAME} has no alias 'nope'"):
        resolve_artifact(f"models:/{NAME}@nope", settings, tiny_model_dir)
    # A local folder is resolved without MLflow: nothing downloaded, no registry asked.

    def no_mlflow(*args, **kwargs):
        raise AssertionError("a local trained_artifact must not touch MLflow")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlflow, "MlflowClient", no_mlflow)
        patch.setattr(mlflow, "set_tracking_uri", no_mlflow)
        assert (
            resolve_artifact(str(source), settings, tiny_model_dir).lineage["parent_run_id"]
            == lifecycle["a"].mlflow_run_id
        )


def test_refine_runs_two_nested_stages_the_second_from_the_first_version(lifecycle, tmp_path):
    from flows.refine import refine

    # Evaluate on a separate folder: 12 demo rows (some of them also training rows) are the eval set.
    rows = [
        json.loads(line)
        for f in sorted(DEMO_DATA.glob("*.jsonl"))
        for line in f.read_text().splitlines()
        if line.strip()
    ][:12]
    eval_dir = tmp_path / "eval-data"
    write_jsonl(eval_dir / "eval.jsonl", rows)
    settings = load_settings(
        "demo",
        None,
        [
            "max_steps=2",
            "refine_max_steps=3",
            "refine_subset_fraction=0.3",
            "num_sample_generations=1",
            "max_new_tokens=4",
            "registered_model_name=lc-refine",
            "element_name=Refine Test",
            f"eval_data_path={eval_dir}",
            "eval_max_rows=8",  # a seeded 8 of the 12 eval rows scored; all 12 still kept out of training
        ],
    )
    summary = refine(settings)
    first, second = summary.stages
    client = lifecycle["client"]
    parent = client.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["stage_versions"] == "1,2"
    for stage in (first, second):
        assert client.get_run(stage.mlflow_run_id).data.tags["mlflow.parentRunId"] == summary.parent_run_id
        metrics = client.get_run(stage.mlflow_run_id).data.metrics
        assert (metrics["eval_rows"], metrics["eval_rows_held_out"]) == (8, 12)
    assert first.train_rows < 0.5 * second.train_rows and second.train_rows <= 360 - 12
    assert second.lineage["parent_model"] == "lc-refine" and second.lineage["parent_version"] == first.model_version
    assert client.get_run(second.mlflow_run_id).data.params["learning_rate"] == "0.0003"
    assert second.global_step == 3 and first.global_step == 2
    assert "first version" in first.promotion  # stage 1 of a new model is its first version


def test_an_unset_alias_fails_or_starts_from_the_base_as_asked(lifecycle, tiny_model_dir):
    from trainer.errors import SettingsError
    from trainer.stages.resolve import resolve_assets

    uri = "models:/never-trained@champion"
    with pytest.raises(SettingsError, match="never-trained has no alias 'champion'"):  # the default: fail
        resolve_assets(load_settings("demo", None, SETS + [f"trained_artifact={uri}"]))
    fresh = resolve_assets(
        load_settings("demo", None, SETS + [f"trained_artifact={uri}", "trained_artifact_if_unset=start_from_base"])
    )
    assert fresh.warm_start_adapter is None and fresh.resume_checkpoint is None
    assert fresh.lineage == {"parent_note": f"{uri} was not set: trained from the base"}
    # A model that exists but lacks that alias is "unset" too; a set alias is used as usual.
    assert (
        resolve_assets(
            load_settings(
                "demo",
                None,
                SETS + [f"trained_artifact=models:/{NAME}@nope", "trained_artifact_if_unset=start_from_base"],
            )
        ).warm_start_adapter
        is None
    )
    used = resolve_assets(
        load_settings(
            "demo",
            None,
            SETS + [f"trained_artifact=models:/{NAME}@champion", "trained_artifact_if_unset=start_from_base"],
        )
    )
    assert used.warm_start_adapter is not None and used.lineage["parent_model"] == NAME
