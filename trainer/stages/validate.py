"""Validate: every row checked against the data contracts, the report and lineage recorded on the
run's MLflow run, the gates applied, and the valid rows split into train and held-out.

Two halves, so the Prefect task can cache the expensive one: `check_data` reads, checks and counts
tokens (no side effects; cached on `validation_cache_key`), `record_validation` writes the report
files, logs to MLflow and applies the gates (once per flow run).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from filelock import FileLock

from trainer import registry
from trainer.config.settings import Settings
from trainer.config.state import state_dir
from trainer.data.contracts.report import ValidationReport, check_gates, write_report
from trainer.data.contracts.suites import validator_digest
from trainer.data.contracts.validate import fingerprint_path, options_from, validate_dataset
from trainer.data.example_table import ExampleTable
from trainer.data.formats import Example
from trainer.data.snapshot import DatasetSnapshot
from trainer.data.split import split_examples
from trainer.layout import EXAMPLES_FILE, VALIDATED_DIR, prune_keyed
from trainer.model.assets import load_counting_tokenizer, tokenizer_digest
from trainer.stages.unchanged import TRAINING_HASH_TAG, training_hash


def validation_cache_key(settings: Settings, data_path: Path, tokenizer_dir: Path) -> str:
    """Everything a validation result depends on: the files' bytes and relative paths (fingerprint),
    the folder, the suites and the checking code (validator digest, which covers the contract
    version), the settings validate_dataset reads, and the tokenizer that counts tokens."""
    inputs = {
        "data_path": str(Path(data_path).resolve()),
        "fingerprint": fingerprint_path(data_path, text_files=settings.dataset_format == "text"),
        "validator": validator_digest(),
        "dataset_format": settings.dataset_format,
        "column_mapping": sorted(settings.column_mapping.items()),
        "max_seq_length": settings.max_seq_length,
        "overlong_rows": settings.overlong_rows,
        "text_windows": [settings.text_windows, settings.text_window_overlap],
        "duplicate_rows": settings.duplicate_rows,
        "unresolved_placeholders": settings.unresolved_placeholders,
        "tokenizer": tokenizer_digest(tokenizer_dir),
    }
    return "validate-" + hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def check_data(
    settings: Settings, data_path: Path, tokenizer_dir: Path, cache_key: str
) -> tuple[ValidationReport, Sequence[Example]]:
    """Read every row, run the contract, count tokens with the base model's tokenizer. The valid rows
    go to `<state>/validated/<cache_key>/examples.arrow` and come back as a view of that file; no
    other side effects."""
    tokenizer = load_counting_tokenizer(tokenizer_dir, settings.trust_remote_code)
    root = state_dir() / VALIDATED_DIR
    folder = root / cache_key
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{cache_key}.lock"), timeout=4 * 3600):  # one validation writes it at a time
        result = validate_dataset(
            data_path,
            None,
            tokenizer=tokenizer,
            max_seq_length=settings.max_seq_length,
            examples_path=folder / EXAMPLES_FILE,
            **options_from(settings),
        )
    prune_keyed(root)
    return result


def validated_rows_present(examples: Sequence[Example]) -> bool:
    """False when a cached validation's rows file was removed, cut short or changed since (pruned,
    the state folder cleaned, a full disk, a hand edit): the cache hit can't be used."""
    if isinstance(examples, ExampleTable):
        if not examples.intact():
            return False
        os.utime(examples.path.parent)  # most recently used: kept by prune_keyed
    return True


def record_validation(
    settings: Settings,
    run_id: str,
    run_name: str,
    output_dir: Path,
    report: ValidationReport,
    examples: Sequence[Example],
    cached: bool,
) -> DatasetSnapshot:
    """Write the report files, log them, the counts and the dataset lineage to the MLflow run, apply
    the gates (DataGateError), and split the valid rows. Lineage is logged also for runs the gates stop."""
    write_report(report, output_dir / "data")
    hashed = training_hash(settings)
    registry.log_artifact(run_id, report.report_path, "data")
    registry.log_artifact(run_id, report.quarantine_path, "data")
    registry.log_metrics(
        run_id,
        {
            "rows_total": report.rows_total,
            "rows_valid": report.rows_valid,
            "rows_quarantined": report.rows_quarantined,
            "rows_duplicate": report.rows_duplicate,
            "rows_overlong": report.rows_overlong,
        },
    )
    registry.set_tags(
        run_id,
        {
            "data_fingerprint": report.fingerprint,
            "contract_version": report.contract_version,
            "data_format": report.format or "",
            "data_validation_cached": str(cached).lower(),
            TRAINING_HASH_TAG: hashed,
        },
    )
    registry.log_dataset(run_id, report, len(examples))
    check_gates(report, settings.min_valid_rows, settings.max_invalid_fraction)
    train, held_out = split_examples(examples, settings.eval_fraction, settings.random_seed)
    registry.log_metrics(
        run_id, {"train_rows": len(train), "eval_rows": len(held_out), "eval_rows_held_out": len(held_out)}
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
        rows_overlong=report.rows_overlong,
        cached=cached,
        training_hash=hashed,
    )
