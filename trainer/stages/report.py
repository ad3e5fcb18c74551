"""Report: the run report (markdown, also in MLflow as report/run_report.md) that ends every flow
run, and the MLflow run marked finished."""

from __future__ import annotations

from trainer import registry
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.evaluate.report import EvalReport
from trainer.model.assets import ModelAssets
from trainer.reports.run_report import run_markdown
from trainer.stages.register import RegisteredModel
from trainer.storage.backup import BackupManifest
from trainer.train.job import TrainResult


def report_for_run(
    settings: Settings,
    dataset: DatasetSnapshot,
    assets: ModelAssets,
    trained: TrainResult,
    report: EvalReport,
    registered: RegisteredModel,
    manifest: BackupManifest,
    merged: str | None = None,
) -> str:
    """The run report's markdown, logged to MLflow; the MLflow run is marked finished."""
    markdown = run_markdown(
        run_name=dataset.run_name,
        mlflow_run_id=dataset.run_id,
        settings=settings.model_dump(mode="json"),
        data={
            "rows_total": dataset.rows_total,
            "rows_valid": dataset.rows_valid,
            "rows_quarantined": dataset.rows_quarantined,
            "train_rows": len(dataset.train_examples),
            "eval_rows": len(dataset.eval_examples),
            "eval_rows_held_out": dataset.eval_rows_held_out or len(dataset.eval_examples),
            "eval_generated_rows": report.eval_generated_rows,
            "contract_version": dataset.contract_version,
            "fingerprint": dataset.fingerprint,
        },
        metrics=report.metrics(),
        baselines=report.baselines,
        champion_version=report.champion_version,
        model={"name": registered.name, "version": registered.version, "aliases": registered.aliases},
        promotion=f"Promotion: {registered.promotion}" if registered.promotion else "",
        lineage=assets.lineage,
        backup={
            "location": manifest.location,
            "files": len(manifest.files),
            "mib": manifest.total_bytes / 2**20,
            "merged": merged,
        },
        training={
            "global_step": trained.global_step,
            "device": trained.runtime.get("device"),
            "quantization": trained.runtime.get("quantization"),
            "train_loss": trained.train_loss,
            "seconds": trained.seconds,
        },
        samples=report.samples[: settings.num_sample_generations],
        notes=report.notes,
    )
    registry.log_text(dataset.run_id, markdown, "report/run_report.md")
    registry.finish_run(dataset.run_id)
    return markdown
