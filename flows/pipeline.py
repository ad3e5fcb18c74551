"""The `llm-trainer` flow: the pipeline diagram, top to bottom. Composition only."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow

from tasks import backup_artifacts, evaluate_adapter, register_model, resolve_model_assets, train_adapter, validate_data
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


@flow(name="llm-trainer", log_prints=True, validate_parameters=True)
def llm_trainer(settings: Settings) -> PipelineSummary:
    """Validate the data, resolve the base model, train a LoRA adapter, evaluate it, register it in
    MLflow and back it up. Every stage is a retryable Prefect task; see docs/architecture.md."""
    dataset = validate_data(settings)
    assets = resolve_model_assets(settings, dataset.run_id)
    trained = train_adapter(settings, dataset, assets)
    report = evaluate_adapter(settings, dataset, assets, trained)
    registered = register_model(settings, dataset, assets, trained, report)
    manifest = backup_artifacts(settings, dataset, trained, registered)
    return PipelineSummary(
        mlflow_run_id=dataset.run_id,
        run_name=dataset.run_name,
        model_name=registered.name,
        model_version=registered.version,
        aliases=registered.aliases,
        backup_location=manifest.location,
        train_loss=trained.train_loss,
        eval_metrics=report.metrics(),
        device=trained.runtime["device"],
        quantization=trained.runtime["quantization"],
        global_step=trained.global_step,
    )
