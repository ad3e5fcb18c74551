from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from trainer import tracking
from trainer.assets import ModelAssets, resolve_assets
from trainer.settings import Settings


@task(name="resolve", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def resolve_model_assets(settings: Settings, run_id: str) -> ModelAssets:
    logger = get_run_logger()
    assets = resolve_assets(settings)
    logger.info(
        "Base model %s from %s (%s); %s",
        settings.base_model_architecture, assets.base_model_dir, assets.base_source,
        f"resuming checkpoint {assets.resume_checkpoint}" if assets.resume_checkpoint
        else f"warm start from adapter {assets.warm_start_adapter}" if assets.warm_start_adapter
        else "fresh LoRA adapter",
    )
    tracking.set_tags(run_id, {"base_model_source": assets.base_source, "base_model_dir": assets.base_model_dir,
                               "trained_artifact": settings.trained_artifact or ""})
    return assets
