from __future__ import annotations

from prefect import get_run_logger

from tasks.retry import pipeline_task
from trainer.config.settings import Settings
from trainer.model.assets import ModelAssets
from trainer.stages.resolve import resolve_for_run


# A missing or incompatible trained_artifact is a SettingsError: it fails at once, not retried.
@pipeline_task("resolve", 5, 30)
def resolve_model_assets(
    settings: Settings, run_id: str, parent_run_id: str | None = None, output_dir: str | None = None
) -> ModelAssets:
    """The base model and the trained artifact to start from (checked to fit the base), with the
    lineage recorded on the run; under the refine flow, the run is nested in its parent run."""
    logger = get_run_logger()
    assets = resolve_for_run(settings, run_id, parent_run_id, output_dir)
    start = (
        f"resuming checkpoint {assets.resume_checkpoint}" if assets.resume_checkpoint
        else f"warm start from adapter {assets.warm_start_adapter}" if assets.warm_start_adapter
        else "fresh LoRA adapter"
    )  # fmt: skip
    logger.info("Base model %s from %s (%s); %s", settings.base_model_architecture, assets.base_model_dir,
                assets.base_source, start)  # fmt: skip
    if assets.lineage:
        logger.info("Lineage: %s", ", ".join(f"{k}={v}" for k, v in assets.lineage.items()))
    return assets
