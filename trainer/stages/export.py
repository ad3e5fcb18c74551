"""Export (only with export_merged: true): the adapter merged into the full-precision base,
saved as safetensors in <output_dir>/merged. A finished export in this run's folder is reused."""

from __future__ import annotations

from pathlib import Path

from trainer import registry
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.model.assets import ModelAssets
from trainer.model.export import export_merged
from trainer.train.job import TrainResult


def export_for_run(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult) -> str:
    merged = export_merged(
        settings, Path(assets.base_model_dir), Path(trained.adapter_dir), Path(dataset.output_dir) / "merged"
    )
    registry.set_tags(dataset.run_id, {"merged_model_dir": str(merged)})
    return str(merged)
