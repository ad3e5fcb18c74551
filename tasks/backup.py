from __future__ import annotations

from prefect import get_run_logger

from tasks.retry import pipeline_task
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.evaluate.report import EvalReport
from trainer.model.assets import ModelAssets
from trainer.redact import redact
from trainer.stages.backup import backup_for_run
from trainer.stages.register import RegisteredModel
from trainer.storage.backup import BackupManifest
from trainer.train.job import TrainResult


# Transient errors (a flaky object store) are retried; a retry verifies a finished backup of this
# run instead of copying again, and redoes an unfinished one.
@pipeline_task("backup", 5, 30, 120)
def backup_artifacts(
    settings: Settings,
    dataset: DatasetSnapshot,
    trained: TrainResult,
    registered: RegisteredModel,
    assets: ModelAssets | None = None,
    report: EvalReport | None = None,
    merged: str | None = None,
) -> BackupManifest:
    """Copy adapter, tokenizer, final checkpoint, settings, eval and data reports (and the base when
    small, the merged model when exported) to artifact_backup_save_path, with a verified MANIFEST.json."""
    manifest = backup_for_run(settings, dataset, trained, registered, assets, report, merged)
    get_run_logger().info(
        "Backed up %d files (%.1f MiB) to %s, MANIFEST.json verified",
        len(manifest.files), manifest.total_bytes / 2**20, redact(manifest.location),
    )  # fmt: skip
    return manifest
