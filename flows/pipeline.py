"""The `llm-trainer` flow: the pipeline diagram, top to bottom. Composition only."""

from __future__ import annotations

from prefect import flow

from tasks import (
    END_RUN_HOOKS,
    backup_artifacts,
    evaluate_adapter,
    export_merged_model,
    promote_model,
    register_model,
    report_run,
    resolve_model_assets,
    select_rows,
    skip_if_unchanged,
    train_adapter,
    validate_data,
)
from trainer.config.settings import Settings
from trainer.stages.select import needs_selection
from trainer.stages.summary import PipelineSummary, summarize


# The hooks end the MLflow run FAILED / KILLED when the flow run fails, crashes or is cancelled.
@flow(name="llm-trainer", log_prints=True, validate_parameters=True, **END_RUN_HOOKS)
def llm_trainer(settings: Settings, parent_run_id: str | None = None) -> PipelineSummary:
    """Validate the data, resolve the base model, train a LoRA adapter, evaluate it, register it in
    MLflow (challenger), back it up and verify the copy, and only then promote it to champion when the
    policy says so. With skip_if_unchanged, stop after validation when the champion was trained on the
    same data with the same training settings. Every stage is a retryable Prefect task; see docs/architecture.md.
    `parent_run_id` nests this run's MLflow run under another (the refine flow's)."""
    dataset = validate_data(settings)
    if needs_selection(settings, dataset):  # eval_data_path, train_subset_fraction or more held out than eval_max_rows
        dataset = select_rows(settings, dataset)
    if settings.skip_if_unchanged and (unchanged := skip_if_unchanged(settings, dataset)) is not None:
        return unchanged  # the champion was trained on this data with these settings: nothing to do
    assets = resolve_model_assets(settings, dataset.run_id, parent_run_id, dataset.output_dir)
    trained = train_adapter(settings, dataset, assets)
    report = evaluate_adapter(settings, dataset, assets, trained)
    registered = register_model(settings, dataset, assets, trained, report)
    merged = export_merged_model(settings, dataset, assets, trained) if settings.export_merged else None
    manifest = backup_artifacts(settings, dataset, trained, registered, assets, report, merged)
    registered = promote_model(dataset, registered, manifest)
    report_run(settings, dataset, assets, trained, report, registered, manifest, merged)
    return summarize(dataset, assets, trained, report, registered, manifest, merged)
