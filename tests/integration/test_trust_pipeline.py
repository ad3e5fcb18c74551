"""The registry never says what is not true, on the real pipeline (Prefect, MLflow, training):

- a run that diverges (a real NaN loss) is not registered, fails with one line, and its MLflow run
  reads FAILED;
- a backup that runs out of space fails at once (one attempt), leaves no partial backup, and the new
  version stays a challenger: `champion` moves only after a verified backup.
"""

from __future__ import annotations

import math
import uuid

import fsspec
import pytest
from mlflow import MlflowClient

from tests.unit.test_trust_backup import CappedMemoryFileSystem
from trainer.config import state
from trainer.config.loading import load_settings
from trainer.errors import BackupSpaceError, NonFiniteError

pytestmark = pytest.mark.slow

FAST = ["max_steps=2", "save_every_n_iterations=2", "num_sample_generations=0", "eval_generation_rows=0",
        "eval_fraction=0.03"]  # fmt: skip


def _client() -> MlflowClient:
    return MlflowClient(state.tracking_uri())


def _only_run(experiment_name: str):
    experiment = _client().get_experiment_by_name(experiment_name)
    runs = _client().search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


def _task_runs(flow_run_id: str) -> dict[str, list]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)])))
    found: dict[str, list] = {}
    for run in runs:
        found.setdefault(run.name.rsplit("-", 1)[0], []).append(run)  # "backup-f38" -> "backup"
    return found


def test_a_diverging_run_is_never_registered_and_its_run_reads_failed(prefect_server, tiny_model_dir):
    from flows.pipeline import llm_trainer

    name, experiment = f"trust-nan-{uuid.uuid4().hex[:6]}", f"trust-nan-{uuid.uuid4().hex[:6]}"
    # Valid settings that really diverge on the tiny model: a LoRA scale of 1e6 at learning rate 1.
    settings = load_settings(
        "demo",
        None,
        [
            *FAST,
            "max_steps=6",
            "learning_rate=1.0",
            "lora_alpha=1000000",
            "max_grad_norm=1e30",
            "warmup_ratio=0",
            "lr_scheduler_type=constant",
            "quantization_rank=none",
            f"registered_model_name={name}",
            f"experiment_name={experiment}",
        ],
    )
    with pytest.raises(NonFiniteError, match=r"^training diverged: the training loss is nan from iteration \d") as info:
        llm_trainer(settings)
    assert "\n" not in str(info.value)
    assert _client().search_model_versions(f"name = '{name}'") == []  # not registered at all
    run = _only_run(experiment)
    assert run.info.status == "FAILED" and "training diverged" in run.data.tags["llm_trainer.end_reason"]
    # The logged loss is the real one (the Trainer's default filter logged a NaN step as 0.0).
    assert any(math.isnan(m.value) for m in _client().get_metric_history(run.info.run_id, "train_loss"))


def test_a_full_backup_leaves_the_old_truth_and_the_next_good_run_is_promoted_after_its_backup(
    prefect_server, tiny_model_dir, monkeypatch
):
    from flows.pipeline import llm_trainer

    name, experiment = f"trust-bk-{uuid.uuid4().hex[:6]}", f"trust-bk-{uuid.uuid4().hex[:6]}"
    common = [*FAST, f"registered_model_name={name}", f"experiment_name={experiment}"]
    full = f"cappedmem://full-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(CappedMemoryFileSystem, "budget", 100_000)  # the demo backup is several MB
    with pytest.raises(BackupSpaceError, match=rf"no space left at {full}/.* \(the backup needs [\d,]+ bytes"):
        llm_trainer(load_settings("demo", None, [*common, f"artifact_backup_save_path={full}"]))

    first = _only_run(experiment)
    assert first.info.status == "FAILED" and "no space left" in first.data.tags["llm_trainer.end_reason"]
    backups = _task_runs(first.data.tags["llm_trainer.run_key"])["backup"]
    assert [r.run_count for r in backups] == [1]  # failed at once: not retried
    fs, root = fsspec.core.url_to_fs(full)
    assert not fs.exists(root) or fs.find(root) == []  # no partial folder, no MANIFEST.json
    version = _client().get_model_version(name, "1")
    assert version.aliases == ["challenger"]  # registered, never champion: it has no backup
    assert version.tags["promotion_decision"] == "promote_after_backup"

    good = llm_trainer(load_settings("demo", None, common))
    assert good.model_version == "2" and set(good.aliases) == {"challenger", "champion"}
    promoted = _client().get_model_version(name, "2")
    assert promoted.tags["promotion_decision"] == "promoted"
    assert f"backup verified: {good.backup_location}" in promoted.tags["champion_reason"]
    assert promoted.tags["backup_location"] == good.backup_location
    assert _client().get_run(good.mlflow_run_id).info.status == "FINISHED"
