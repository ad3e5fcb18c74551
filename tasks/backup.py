from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from tasks.register import RegisteredModel
from tasks.validate import DatasetSnapshot
from trainer import state, tracking
from trainer.backup import BackupManifest, backup
from trainer.settings import Settings
from trainer.training import TrainResult


@task(name="backup", retries=3, retry_delay_seconds=[5, 30, 120], cache_policy=NONE)
def backup_artifacts(settings: Settings, dataset: DatasetSnapshot, trained: TrainResult, registered: RegisteredModel) -> BackupManifest:
    logger = get_run_logger()
    destination = settings.artifact_backup_save_path or str(state.backups_dir())
    manifest = backup(
        {"adapter": Path(trained.adapter_dir), "data": Path(dataset.report_path).parent},
        destination,
        dataset.run_name,
        metadata={"model": registered.name, "version": registered.version, "mlflow_run_id": dataset.run_id,
                  "base_model_architecture": settings.base_model_architecture, "data_fingerprint": dataset.fingerprint},
    )
    tracking.set_tags(dataset.run_id, {"backup_location": manifest.location})
    logger.info("Backed up %d files (%.1f MiB) to %s, manifest verified", len(manifest.files), manifest.total_bytes / 2**20, manifest.location)
    return manifest
