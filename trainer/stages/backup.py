"""Back up: the run's adapter, tokenizer, final checkpoint, settings, eval and data reports (and the
base when small, the merged model when exported) copied to artifact_backup_save_path, verified,
with MANIFEST.json written last; the location recorded on the run and on the registered version.

A retry verifies a finished backup of this run instead of copying again, and redoes an unfinished one.
"""

from __future__ import annotations

from pathlib import Path

from trainer import registry
from trainer.config import state
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.evaluate.report import EvalReport
from trainer.model.assets import ModelAssets
from trainer.stages.register import RegisteredModel
from trainer.storage.backup import BackupManifest, backup
from trainer.storage.sources import CONTENTS, backup_metadata, backup_sources
from trainer.train.checkpoints import latest_checkpoint
from trainer.train.job import TrainResult


def backup_for_run(
    settings: Settings,
    dataset: DatasetSnapshot,
    trained: TrainResult,
    registered: RegisteredModel,
    assets: ModelAssets | None = None,
    report: EvalReport | None = None,
    merged: str | None = None,
) -> BackupManifest:
    destination = settings.artifact_backup_save_path or str(state.backups_dir())
    sources = backup_sources(settings, dataset, trained, assets, merged)
    model = {"model": registered.name, "version": registered.version, "aliases": ",".join(registered.aliases)}
    metadata = backup_metadata(
        settings,
        dataset,
        trained,
        model,
        registry.settings_hash(settings),
        assets,
        report,
        latest_checkpoint(Path(dataset.output_dir) / "checkpoints"),
    )
    manifest = backup(
        sources, destination, dataset.run_name, metadata=metadata, contents={k: CONTENTS[k] for k in sources}
    )
    registry.set_tags(dataset.run_id, {"backup_location": manifest.location})
    registry.set_version_tags(registered.name, registered.version, {"backup_location": manifest.location})
    return manifest
