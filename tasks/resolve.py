from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from trainer import tracking
from trainer.assets import ModelAssets, resolve_assets
from trainer.settings import Settings


# Not retried on bad settings: an incompatible or missing trained_artifact fails the same way again.
@task(name="resolve", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def resolve_model_assets(settings: Settings, run_id: str, parent_run_id: str | None = None, output_dir: str | None = None) -> ModelAssets:
    """The base model and the trained artifact to start from (checked to fit the base), with the
    lineage recorded on the run; under the refine flow, the run is nested in its parent run."""
    logger = get_run_logger()
    if parent_run_id:
        tracking.set_parent_run(run_id, parent_run_id)
    assets = resolve_assets(settings, download_dir=Path(output_dir) / "parent" if output_dir else None)
    logger.info(
        "Base model %s from %s (%s); %s",
        settings.base_model_architecture, assets.base_model_dir, assets.base_source,
        f"resuming checkpoint {assets.resume_checkpoint}" if assets.resume_checkpoint
        else f"warm start from adapter {assets.warm_start_adapter}" if assets.warm_start_adapter
        else "fresh LoRA adapter",
    )
    if assets.lineage:
        logger.info("Lineage: %s", ", ".join(f"{k}={v}" for k, v in assets.lineage.items()))
    tracking.set_tags(run_id, {"base_model_source": assets.base_source, "base_model_dir": assets.base_model_dir,
                               "trained_artifact": settings.trained_artifact or "", **assets.lineage})
    return assets
