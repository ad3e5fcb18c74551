from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.identity import orchestration_tags, run_identity
from tasks.lifecycle import close_orphaned_runs
from tasks.retry import pipeline_task
from trainer import registry
from trainer.config.settings import Settings
from trainer.data.contracts.report import ValidationReport, summary_markdown
from trainer.data.formats import Example
from trainer.data.snapshot import DatasetSnapshot
from trainer.model.assets import resolve_tokenizer_dir
from trainer.redact import redact
from trainer.stages import validate as stage


def _key_from_parameters(context, parameters) -> str:
    return parameters["cache_key"]


# The expensive, side-effect-free half of the stage: read every row, run the contract, count
# tokens. Cached on `cache_key`, so a re-run on unchanged data with unchanged contract settings
# reuses the result (set PREFECT_TASKS_REFRESH_CACHE=true to force a fresh check). The flow-run
# specific half (MLflow run, report files, artifacts, gates) stays in `validate_data`, uncached:
# a cache hit in a new flow run still gets its own MLflow run and its own report files.
@pipeline_task("check-data", cache_key_fn=_key_from_parameters, cache_expiration=timedelta(days=7), persist_result=True)
def check_data(
    settings: Settings, data_path: Path, tokenizer_dir: Path, cache_key: str
) -> tuple[ValidationReport, Sequence[Example]]:
    return stage.check_data(settings, data_path, tokenizer_dir, cache_key)


# Not retried: bad data does not get better by trying again. Idempotency comes from the MLflow run
# being keyed by the flow run; the data check itself is cached in `check_data`.
@pipeline_task("validate")
def validate_data(settings: Settings) -> DatasetSnapshot:
    logger = get_run_logger()
    data_path = settings.require_training_data()
    run_key, run_name, output_dir = run_identity(settings)
    close_orphaned_runs(settings.experiment_name)  # runs a SIGKILL left RUNNING are closed as KILLED
    run_id = registry.get_or_create_run(settings, run_key, run_name, extra_tags=orchestration_tags())
    logger.info("MLflow run %s (%s); its artifacts go to %s", run_id, run_name, registry.artifact_location(run_id))
    tokenizer_dir = resolve_tokenizer_dir(settings)  # the tokenizer only: no model is loaded here
    key = stage.validation_cache_key(settings, data_path, tokenizer_dir)
    state = check_data(settings, data_path, tokenizer_dir, key, return_state=True)
    report, examples = state.result()
    if state.name == "Cached" and not stage.validated_rows_present(examples):  # its rows file removed or damaged since
        logger.warning("The cached validation's rows are gone or damaged in the state folder; validating again")
        state = check_data.with_options(refresh_cache=True)(settings, data_path, tokenizer_dir, key, return_state=True)
        report, examples = state.result()
    cached = state.name == "Cached"
    logger.info(
        "Validated %s%s: %d rows, %d valid, %d quarantined, %d exact duplicates left out, %d over max_seq_length=%d "
        "tokens (format %s, contract %s)",
        data_path, " (cached result)" if cached else "", report.rows_total, report.rows_valid, report.rows_quarantined,
        report.rows_duplicate, report.rows_overlong, settings.max_seq_length, report.format, report.contract_version,
    )  # fmt: skip
    if report.rows_overlong:
        first = ", ".join(f"{o.file}:{o.line} ({o.tokens})" for o in report.overlong[:5])
        what = "quarantined" if settings.overlong_rows == "quarantine" else "the trainer leaves them out"
        logger.warning(
            "%d rows are longer than max_seq_length=%d tokens (%s): %s%s",
            report.rows_overlong, settings.max_seq_length, what, first, ", ..." if report.rows_overlong > 5 else "",
        )  # fmt: skip
    for line in report.warnings:  # files that look like data but are not read
        logger.warning("%s", line)
    for line in report.notes:  # what validation changed in valid rows (merged turns, text windows)
        logger.info("%s", line)
    try:
        dataset = stage.record_validation(settings, run_id, run_name, output_dir, report, examples, cached)
    finally:
        create_markdown_artifact(
            key="data-contract", markdown=redact(summary_markdown(report, cached)), description="Data contract result"
        )
    logger.info("%d train / %d held-out rows", len(dataset.train_examples), len(dataset.eval_examples))
    return dataset
