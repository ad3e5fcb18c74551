"""The `llm-trainer` flow: the pipeline diagram, top to bottom. Composition only."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import flow

from tasks import (
    backup_artifacts, evaluate_adapter, export_merged_model, register_model, report_run, resolve_model_assets, select_rows,
    train_adapter, validate_data,
)
from trainer.settings import Settings


@dataclass
class PipelineSummary:
    mlflow_run_id: str
    run_name: str
    model_name: str
    model_version: str
    aliases: list[str]
    backup_location: str
    train_loss: float
    eval_metrics: dict[str, float]
    device: str
    quantization: str
    global_step: int
    promotion: str = ""  # the promotion policy's decision, in words
    lineage: dict[str, str] = field(default_factory=dict)  # parent_model / parent_version / parent_run_id
    train_rows: int = 0
    merged_dir: str | None = None


@flow(name="llm-trainer", log_prints=True, validate_parameters=True)
def llm_trainer(settings: Settings, parent_run_id: str | None = None) -> PipelineSummary:
    """Validate the data, resolve the base model, train a LoRA adapter, evaluate it, register it in
    MLflow and back it up. Every stage is a retryable Prefect task; see docs/architecture.md.
    `parent_run_id` nests this run's MLflow run under another (the refine flow's)."""
    dataset = validate_data(settings)
    if settings.eval_data_path is not None or settings.train_subset_fraction < 1:
        dataset = select_rows(settings, dataset)
    assets = resolve_model_assets(settings, dataset.run_id, parent_run_id, dataset.output_dir)
    trained = train_adapter(settings, dataset, assets)
    report = evaluate_adapter(settings, dataset, assets, trained)
    registered = register_model(settings, dataset, assets, trained, report)
    merged = export_merged_model(settings, dataset, assets, trained) if settings.export_merged else None
    manifest = backup_artifacts(settings, dataset, trained, registered, assets, report, merged)
    report_run(settings, dataset, assets, trained, report, registered, manifest, merged)
    return PipelineSummary(
        mlflow_run_id=dataset.run_id,
        run_name=dataset.run_name,
        model_name=registered.name,
        model_version=registered.version,
        aliases=registered.aliases,
        backup_location=manifest.location,
        train_loss=trained.train_loss,
        eval_metrics=report.all_metrics(),
        device=trained.runtime["device"],
        quantization=trained.runtime["quantization"],
        global_step=trained.global_step,
        promotion=registered.promotion,
        lineage=assets.lineage,
        train_rows=len(dataset.train_examples),
        merged_dir=merged,
    )
