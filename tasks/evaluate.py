from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from tasks.validate import DatasetSnapshot
from trainer import tracking
from trainer.assets import ModelAssets
from trainer.evaluation import EvalReport, evaluate
from trainer.settings import Settings
from trainer.training import TrainResult


@task(name="evaluate", retries=1, retry_delay_seconds=10, cache_policy=NONE)
def evaluate_adapter(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult) -> EvalReport:
    logger = get_run_logger()
    report = evaluate(settings, Path(assets.base_model_dir), Path(trained.adapter_dir), dataset.eval_examples)
    if settings.enable_metrics and report.metrics():
        tracking.log_metrics(dataset.run_id, report.metrics(), step=trained.global_step)
    if report.samples:
        tracking.log_table(dataset.run_id, report.samples, "eval/sample_generations.json")
        create_table_artifact(key="sample-generations", table=report.samples, description="Held-out prompts answered by the trained adapter")
    logger.info("Held-out: %s", ", ".join(f"{k}={v:.4f}" for k, v in report.metrics().items()) or "no eval rows")
    return report
