from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from tasks.retry import pipeline_task
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.evaluate.report import EvalReport
from trainer.model.assets import ModelAssets
from trainer.redact import redact_value
from trainer.stages.evaluate import evaluate_for_run
from trainer.train.job import TrainResult


@pipeline_task("evaluate", 10)
def evaluate_adapter(
    settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult
) -> EvalReport:
    """Score the trained adapter on the eval rows and, on the same rows, the base model and the
    current champion; log metrics, the sample table, eval_report.json and the loss curve."""
    logger = get_run_logger()
    report = evaluate_for_run(settings, dataset, assets, trained)
    if report.samples:
        create_table_artifact(
            key="sample-generations",
            table=redact_value(report.samples),
            description="Held-out prompts answered by the trained adapter (and the base model and champion)",
        )
    for line in report.notes:
        logger.warning(line)
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in report.all_metrics().items())
    logger.info("Held-out: %s", metrics or "no eval rows")
    return report
