from __future__ import annotations

from prefect import get_run_logger

from tasks.register import registry_lock
from tasks.retry import pipeline_task
from trainer.data.snapshot import DatasetSnapshot
from trainer.stages.promote import promote_for_run
from trainer.stages.register import RegisteredModel
from trainer.storage.backup import BackupManifest


# After the backup is verified, never before: a champion always has a backup. Under the same
# per-model lock as registration; idempotent (a retry after the alias moved only records it).
@pipeline_task("promote", 5, 30)
def promote_model(dataset: DatasetSnapshot, registered: RegisteredModel, manifest: BackupManifest) -> RegisteredModel:
    """Move `champion` to the new version when the promotion decision recorded at registration says so."""
    with registry_lock(registered.name):
        promoted = promote_for_run(dataset.run_id, registered, manifest)
    get_run_logger().info(
        "%s version %s (aliases: %s). Promotion: %s",
        promoted.name, promoted.version, ", ".join(promoted.aliases) or "none", promoted.promotion,
    )  # fmt: skip
    return promoted
