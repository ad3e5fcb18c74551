from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.common import orchestration_tags, run_identity
from trainer import tracking
from trainer.assets import load_counting_tokenizer, resolve_tokenizer_dir, tokenizer_digest
from trainer.contracts import ValidationReport, check_gates, fingerprint_path, validate_dataset, validator_digest, write_report
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
    rows_overlong: int = 0
    cached: bool = False


def validation_cache_key(settings: Settings, data_path: Path, tokenizer_dir: Path) -> str:
    """Everything a validation result depends on: the files' bytes and relative paths (fingerprint),
    the folder, the suites and the checking code (validator digest, which covers the contract
    version), the settings validate_dataset reads, and the tokenizer that counts tokens."""
    inputs = {
        "data_path": str(Path(data_path).resolve()),
        "fingerprint": fingerprint_path(data_path),
        "validator": validator_digest(),
        "dataset_format": settings.dataset_format,
        "column_mapping": sorted(settings.column_mapping.items()),
        "max_seq_length": settings.max_seq_length,
        "overlong_rows": settings.overlong_rows,
        "tokenizer": tokenizer_digest(tokenizer_dir),
    }
    return "validate-" + hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _key_from_parameters(context, parameters) -> str:
    return parameters["cache_key"]


# The expensive, side-effect-free half of the stage: read every row, run the contract, count
# tokens. Cached on `cache_key`, so a re-run on unchanged data with unchanged contract settings
# reuses the result (set PREFECT_TASKS_REFRESH_CACHE=true to force a fresh check). The flow-run
# specific half (MLflow run, report files, artifacts, gates) stays in `validate_data`, uncached:
# a cache hit in a new flow run still gets its own MLflow run and its own report files.
@task(name="check-data", cache_key_fn=_key_from_parameters, cache_expiration=timedelta(days=7), persist_result=True)
def check_data(settings: Settings, data_path: Path, tokenizer_dir: Path, cache_key: str) -> tuple[ValidationReport, list[Example]]:
    tokenizer = load_counting_tokenizer(tokenizer_dir, settings.trust_remote_code)
    return validate_dataset(
        data_path,
        None,
        settings.dataset_format,
        column_mapping=settings.column_mapping,
        tokenizer=tokenizer,
        max_seq_length=settings.max_seq_length,
        overlong_rows=settings.overlong_rows,
    )


# Not retried: bad data does not get better by trying again. Idempotency comes from the MLflow run
# being keyed by the flow run; the data check itself is cached in `check_data`.
@task(name="validate", cache_policy=NONE)
def validate_data(settings: Settings) -> DatasetSnapshot:
    logger = get_run_logger()
    data_path = settings.require_training_data()
    run_key, run_name, output_dir = run_identity(settings)
    run_id = tracking.get_or_create_run(settings, run_key, run_name, extra_tags=orchestration_tags())
    tokenizer_dir = resolve_tokenizer_dir(settings)  # the tokenizer only: no model is loaded here
    state = check_data(settings, data_path, tokenizer_dir, validation_cache_key(settings, data_path, tokenizer_dir), return_state=True)
    report, examples = state.result()
    cached = state.name == "Cached"
    write_report(report, output_dir / "data")

    tracking.log_artifact(run_id, report.report_path, "data")
    tracking.log_artifact(run_id, report.quarantine_path, "data")
    tracking.log_metrics(run_id, {"rows_total": report.rows_total, "rows_valid": report.rows_valid,
                                  "rows_quarantined": report.rows_quarantined, "rows_overlong": report.rows_overlong})
    tracking.set_tags(run_id, {"data_fingerprint": report.fingerprint, "contract_version": report.contract_version,
                               "data_format": report.format or "", "data_validation_cached": str(cached).lower()})
    tracking.log_dataset(run_id, report, len(examples))  # lineage also for runs the gates stop
    logger.info(
        "Validated %s%s: %d rows, %d valid, %d quarantined, %d over max_seq_length=%d tokens (format %s, contract %s)",
        data_path, " (cached result)" if cached else "", report.rows_total, report.rows_valid, report.rows_quarantined,
        report.rows_overlong, settings.max_seq_length, report.format, report.contract_version,
    )
    if report.rows_overlong:
        first = ", ".join(f"{o.file}:{o.line} ({o.tokens})" for o in report.overlong[:5])
        logger.warning("%d rows are longer than max_seq_length=%d tokens (%s): %s%s", report.rows_overlong, settings.max_seq_length,
                       "quarantined" if settings.overlong_rows == "quarantine" else "the trainer leaves them out",
                       first, ", ..." if report.rows_overlong > 5 else "")
    try:
        check_gates(report, settings.min_valid_rows, settings.max_invalid_fraction)
    finally:
        create_markdown_artifact(key="data-contract", markdown=summary_markdown(report, cached), description="Data contract result")
    train, held_out = split_examples(examples, settings.eval_fraction, settings.random_seed)
    tracking.log_metrics(run_id, {"train_rows": len(train), "eval_rows": len(held_out)})
    logger.info("%d train / %d held-out rows", len(train), len(held_out))
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
        rows_overlong=report.rows_overlong,
        cached=cached,
    )


def summary_markdown(report: ValidationReport, cached: bool = False, max_rows: int = 10) -> str:
    """The Prefect artifact: counts, a per-file table, the first quarantined and over-long rows."""

    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [
        f"**{report.rows_valid}/{report.rows_total}** rows valid, **{report.rows_quarantined}** quarantined"
        f"{f', {report.rows_overlong} over max_seq_length {report.max_seq_length} tokens ({report.overlong_rows})' if report.rows_overlong else ''}; "
        f"format `{report.format}`, contract `{report.contract_version}`, fingerprint `{report.fingerprint[:16]}`"
        f"{' (cached result)' if cached else ''}.",
        "",
        "| file | format | rows | valid | quarantined | top reasons |",
        "|---|---|---:|---:|---:|---|",
    ]
    for f in report.files:
        reasons = ", ".join(f"{k} ×{v}" for k, v in list(f.top_reasons.items())[:3])
        lines.append(f"| {cell(f.path)} | {f.format or '-'} | {f.rows_total} | {f.rows_valid} | {f.rows_quarantined} | {reasons} |")
    if report.quarantined:
        lines += ["", "First quarantined rows:", ""]
        lines += [f"- `{cell(q.file)}:{q.line}` **{q.reason}**: {cell(q.detail)}" for q in report.quarantined[:max_rows]]
        if len(report.quarantined) > max_rows:
            lines.append(f"- … {len(report.quarantined) - max_rows} more in the quarantine file")
    if report.overlong:
        lines += ["", f"Rows over max_seq_length ({report.max_seq_length} tokens):", ""]
        lines += [f"- `{cell(o.file)}:{o.line}`: {o.tokens} tokens" for o in report.overlong[:max_rows]]
    if report.ignored_files:
        lines += ["", f"Ignored (not *.jsonl / *.csv): {', '.join(cell(p) for p in report.ignored_files[:10])}"]
    lines += ["", f"Report: `{report.report_path}`; quarantine: `{report.quarantine_path}`"]
    return "\n".join(lines)
