from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.retry import pipeline_task
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.evaluate.report import EvalReport
from trainer.model.assets import ModelAssets
from trainer.redact import redact
from trainer.stages.register import RegisteredModel
from trainer.stages.report import report_for_run
from trainer.storage.backup import BackupManifest
from trainer.train.job import TrainResult


@pipeline_task("report", 5)
def report_run(
    settings: Settings,
    dataset: DatasetSnapshot,
    assets: ModelAssets,
    trained: TrainResult,
    report: EvalReport,
    registered: RegisteredModel,
    manifest: BackupManifest,
    merged: str | None = None,
) -> str:
    """End the flow run with its report: a Prefect markdown artifact (also in MLflow as
    report/run_report.md, beside report/loss_curve.png), and the MLflow run marked finished."""
    markdown = report_for_run(settings, dataset, assets, trained, report, registered, manifest, merged)
    create_markdown_artifact(  # Prefect stores artifacts as given: the one redaction rule first
        key="run-report", markdown=redact(markdown), description=f"{registered.name} version {registered.version}"
    )
    get_run_logger().info(
        "Run report: Prefect artifact 'run-report', MLflow report/run_report.md and report/loss_curve.png"
    )
    return markdown
