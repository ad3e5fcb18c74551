from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from tasks.common import retry_transient
from tasks.validate import DatasetSnapshot
from trainer import tracking
from trainer.assets import ModelAssets
from trainer.export import export_merged
from trainer.settings import Settings
from trainer.training import TrainResult


# Only in the flow with export_merged: true. A finished export in this run's folder is reused.
@task(name="export-merged", retries=1, retry_delay_seconds=10, retry_condition_fn=retry_transient, cache_policy=NONE)
def export_merged_model(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult) -> str:
    """Merge the adapter into the full-precision base and save safetensors to <output_dir>/merged."""
    merged = export_merged(settings, Path(assets.base_model_dir), Path(trained.adapter_dir), Path(dataset.output_dir) / "merged")
    tracking.set_tags(dataset.run_id, {"merged_model_dir": str(merged)})
    get_run_logger().info("Merged model (full-precision base + adapter, safetensors): %s", merged)
    return str(merged)
