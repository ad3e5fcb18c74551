from __future__ import annotations

from dataclasses import dataclass, field

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.common import run_identity
from trainer import tracking
from trainer.contracts import check_gates, validate_dataset
from trainer.data import Example, split_examples
from trainer.settings import Settings


@dataclass
class DatasetSnapshot:
    """What the validate stage hands on: the run's identity, the data's fingerprint and counts,
    and the train / held-out examples."""

    run_id: str
    run_name: str
    output_dir: str
    fingerprint: str
    contract_version: str
    format: str | None
    rows_total: int
    rows_valid: int
    rows_quarantined: int
    report_path: str
    train_examples: list[Example] = field(repr=False)
    eval_examples: list[Example] = field(repr=False)


# Not retried: bad data does not get better by trying again. Cache off: idempotency comes from
# the MLflow run being keyed by the flow run, and hashing every example for a cache key is waste.
@task(name="validate", cache_policy=NONE)
def validate_data(settings: Settings) -> DatasetSnapshot:
    logger = get_run_logger()
    data_path = settings.require_training_data()
    run_key, run_name, output_dir = run_identity(settings)
    run_id = tracking.get_or_create_run(settings, run_key, run_name)
    report, examples = validate_dataset(data_path, output_dir / "data")
    tracking.log_artifact(run_id, report.report_path, "data")
    tracking.log_artifact(run_id, report.quarantine_path, "data")
    tracking.log_metrics(run_id, {"rows_total": report.rows_total, "rows_valid": report.rows_valid, "rows_quarantined": report.rows_quarantined})
    tracking.set_tags(run_id, {"data_fingerprint": report.fingerprint, "contract_version": report.contract_version})
    logger.info(
        "Validated %s: %d rows, %d valid, %d quarantined (format %s, contract %s)",
        data_path, report.rows_total, report.rows_valid, report.rows_quarantined, report.format, report.contract_version,
    )
    check_gates(report, settings.min_valid_rows, settings.max_invalid_fraction)
    train, held_out = split_examples(examples, settings.eval_fraction, settings.random_seed)
    tracking.log_dataset(run_id, report, len(examples))
    tracking.log_metrics(run_id, {"train_rows": len(train), "eval_rows": len(held_out)})
    create_markdown_artifact(
        key="data-contract",
        markdown=f"**{report.rows_valid}/{report.rows_total}** rows valid, {report.rows_quarantined} quarantined; "
        f"format `{report.format}`, contract `{report.contract_version}`; {len(train)} train / {len(held_out)} eval rows. "
        f"Report: `{report.report_path}`",
        description="Data contract result",
    )
    return DatasetSnapshot(
        run_id=run_id,
        run_name=run_name,
        output_dir=str(output_dir),
        fingerprint=report.fingerprint,
        contract_version=report.contract_version,
        format=report.format,
        rows_total=report.rows_total,
        rows_valid=report.rows_valid,
        rows_quarantined=report.rows_quarantined,
        report_path=report.report_path,
        train_examples=train,
        eval_examples=held_out,
    )
