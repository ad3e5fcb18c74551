from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.register import RegisteredModel
from tasks.validate import DatasetSnapshot
from trainer import tracking
from trainer.assets import ModelAssets
from trainer.backup import BackupManifest
from trainer.evaluation import EvalReport
from trainer.report import run_markdown
from trainer.settings import Settings
from trainer.training import TrainResult


@task(name="report", retries=1, retry_delay_seconds=5, cache_policy=NONE)
def report_run(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult, report: EvalReport,
               registered: RegisteredModel, manifest: BackupManifest, merged: str | None = None) -> str:
    """End the flow run with its report: a Prefect markdown artifact (also in MLflow as
    report/run_report.md, beside report/loss_curve.png), and the MLflow run marked finished."""
    markdown = run_markdown(
        run_name=dataset.run_name,
        mlflow_run_id=dataset.run_id,
        settings=settings.model_dump(mode="json"),
        data={"rows_total": dataset.rows_total, "rows_valid": dataset.rows_valid, "rows_quarantined": dataset.rows_quarantined,
              "train_rows": len(dataset.train_examples), "eval_rows": len(dataset.eval_examples),
              "contract_version": dataset.contract_version, "fingerprint": dataset.fingerprint},
        metrics=report.metrics(),
        baselines=report.baselines,
        champion_version=report.champion_version,
        model={"name": registered.name, "version": registered.version, "aliases": registered.aliases},
        promotion=f"Promotion: {registered.promotion}" if registered.promotion else "",
        lineage=assets.lineage,
        backup={"location": manifest.location, "files": len(manifest.files), "mib": manifest.total_bytes / 2**20, "merged": merged},
        training={"global_step": trained.global_step, "device": trained.runtime.get("device"),
                  "quantization": trained.runtime.get("quantization"), "train_loss": trained.train_loss, "seconds": trained.seconds},
        samples=report.samples,
        notes=report.notes,
    )
    create_markdown_artifact(key="run-report", markdown=markdown, description=f"{registered.name} version {registered.version}")
    tracking.log_text(dataset.run_id, markdown, "report/run_report.md")
    tracking.finish_run(dataset.run_id)
    get_run_logger().info("Run report: Prefect artifact 'run-report', MLflow report/run_report.md and report/loss_curve.png")
    return markdown
