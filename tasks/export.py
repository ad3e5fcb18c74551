from __future__ import annotations

from prefect import get_run_logger

from tasks.retry import pipeline_task
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.model.assets import ModelAssets
from trainer.stages.export import export_for_run
from trainer.train.job import TrainResult


# Only in the flow with export_merged: true. A finished export in this run's folder is reused.
@pipeline_task("export-merged", 10)
def export_merged_model(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult) -> str:
    """Merge the adapter into the full-precision base and save safetensors to <output_dir>/merged."""
    merged = export_for_run(settings, dataset, assets, trained)
    get_run_logger().info("Merged model (full-precision base + adapter, safetensors): %s", merged)
    return merged
