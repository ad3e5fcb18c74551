"""Data contracts: every row of the training folder is valid or quarantined with a reason.

The only module that talks to Great Expectations. Suites live as JSON in `data_contracts/`, one per
format; each expectation carries `meta.reason`, the word a quarantined row is tagged with. What GX
can't express well (parse errors, wrong JSON types) is checked here in code with the same reason
vocabulary. Invariant: rows_total == rows_valid + rows_quarantined, and input files are never
modified; the quarantine file keeps each bad row's raw bytes so nothing is lost.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.data import (
    FORMATS,
    SHAREGPT_ROLES,
    TRAINS_AS,
    Example,
    Row,
    detect_format,
    discover_files,
    read_rows,
    to_messages,
)
from trainer.state import PROJECT_ROOT

log = logging.getLogger("llm_trainer.contracts")

CONTRACTS_DIR = PROJECT_ROOT / "data_contracts"
# ShareGPT rows are converted to chat messages and then held to the chat contract.
SUITE_FOR_FORMAT = {"chat": "chat", "sharegpt": "chat", "instruction": "instruction", "prompt_completion": "prompt_completion", "text": "text"}


class DataUnusableError(ValueError):
    """The input can't be validated at all (missing path, no data files, incompatible formats)."""


class DataGateError(ValueError):
    """The data was validated but fails a gate (too few valid rows, too many quarantined)."""


@dataclass
class QuarantinedRow:
    file: str
    line: int
    reason: str
    detail: str
    raw: str | None = None  # the original line when it is valid UTF-8
    raw_base64: str | None = None  # otherwise its bytes, so nothing is lost


@dataclass
class FileReport:
    path: str
    format: str | None
    rows_total: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    top_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class ValidationReport:
    data_path: str
    format: str | None
    contract_version: str
    rows_total: int
    rows_valid: int
    rows_quarantined: int
    fingerprint: str
    files: list[FileReport]
    quarantined: list[QuarantinedRow]
    report_path: str | None = None
    quarantine_path: str | None = None

    @property
    def invalid_fraction(self) -> float:
        return self.rows_quarantined / self.rows_total if self.rows_total else 0.0

    def reason_counts(self) -> Counter:
        return Counter(q.reason for q in self.quarantined)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_suite_document(name: str, contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Any]:
    path = contracts_dir / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


# --- Code checks: parse a row into the typed columns its suite checks -------------------------------


def _strings(record: dict[str, Any], names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names + optional:
        value = record.get(name)
        if value is None:
            if name in optional:
                out[name] = ""
                continue
            raise _RowProblem("missing_field", f"'{name}' is missing or null")
        if not isinstance(value, str):
            raise _RowProblem("wrong_type", f"'{name}' is a {type(value).__name__}, expected a string")
        out[name] = value
    return out


class _RowProblem(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _turns(record: dict[str, Any], fmt: str) -> list[tuple[str, str]]:
    list_key, role_key, content_key = ("messages", "role", "content") if fmt == "chat" else ("conversations", "from", "value")
    turns = record.get(list_key)
    if turns is None:
        raise _RowProblem("missing_field", f"'{list_key}' is missing or null")
    if not isinstance(turns, list) or not turns:
        raise _RowProblem("wrong_type", f"'{list_key}' must be a non-empty list")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise _RowProblem("wrong_type", f"{list_key}[{i}] is a {type(turn).__name__}, expected an object")
        for key in (role_key, content_key):
            if turn.get(key) is None:
                raise _RowProblem("missing_field", f"{list_key}[{i}] has no '{key}'")
            if not isinstance(turn[key], str):
                raise _RowProblem("wrong_type", f"{list_key}[{i}].{key} is a {type(turn[key]).__name__}, expected a string")
        role = turn[role_key] if fmt == "chat" else SHAREGPT_ROLES.get(turn[role_key], turn[role_key])
        out.append((role.replace(",", " "), turn[content_key]))
    return out


def _columns(record: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The typed columns a row's suite checks. Raises _RowProblem for type problems."""
    if fmt in ("chat", "sharegpt"):
        turns = _turns(record, fmt)
        contents = [c for _, c in turns]
        return {
            "roles": ",".join(r for r, _ in turns),
            "min_content_chars": min(len(c.strip()) for c in contents),
            "total_chars": sum(len(c) for c in contents),
        }
    if fmt == "instruction":
        cols = _strings(record, ("instruction", "output"), optional=("input",))
    elif fmt == "prompt_completion":
        cols = _strings(record, ("prompt", "completion"))
    else:
        cols = _strings(record, ("text",))
    return {**cols, "total_chars": sum(len(v) for v in cols.values())}


# --- Great Expectations ------------------------------------------------------------------------


def _run_suite(suite_doc: dict[str, Any], frame) -> dict[int, tuple[str, str]]:
    """Run one suite over `frame`; return row_id -> (reason, detail) of the first failed expectation."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("rows")
    batch_definition = source.add_dataframe_asset("rows").add_batch_definition_whole_dataframe("all")
    suite = gx.ExpectationSuite(name=suite_doc["name"], expectations=suite_doc["expectations"], meta=suite_doc.get("meta", {}))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["row_id"]})
    failures: dict[int, tuple[str, str]] = {}
    # Results come back in suite order, so a row failing several expectations gets the first reason.
    order = {json.dumps(e["kwargs"], sort_keys=True) + e["type"]: i for i, e in enumerate(suite_doc["expectations"])}
    ranked = sorted(
        result.results,
        key=lambda r: order.get(json.dumps(r.expectation_config.kwargs, sort_keys=True) + r.expectation_config.type, 0),
    )
    for expectation_result in ranked:
        if expectation_result.success:
            continue
        meta = expectation_result.expectation_config.meta or {}
        for hit in expectation_result.result.get("unexpected_index_list") or []:
            failures.setdefault(int(hit["row_id"]), (meta.get("reason", "contract_failed"), meta.get("detail", "")))
    return failures


# --- The whole folder --------------------------------------------------------------------------


def fingerprint_files(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def validate_dataset(
    data_path: Path,
    report_dir: Path | None = None,
    dataset_format: str | None = None,
) -> tuple[ValidationReport, list[Example]]:
    """Validate every row under `data_path`; write the report and quarantine file to `report_dir`."""
    import pandas as pd

    data_path = Path(data_path)
    if not data_path.exists():
        raise DataUnusableError(f"{data_path}: does not exist; point training_data_path at a folder of *.jsonl / *.csv files")
    if dataset_format is not None and dataset_format not in FORMATS:
        raise DataUnusableError(f"format {dataset_format!r}: unknown; choose one of {', '.join(FORMATS)}")
    files = discover_files(data_path)
    if not files:
        raise DataUnusableError(f"{data_path}: no *.jsonl or *.csv files found (subfolders included)")
    root = data_path if data_path.is_dir() else data_path.parent

    rows: list[Row] = []
    for path in files:
        try:
            rows.extend(read_rows(path, root))
        except OSError as exc:
            raise DataUnusableError(f"{path}: unreadable ({exc.strerror or exc}); check its permissions") from None

    outcome: dict[int, tuple[str, str]] = {}  # row index -> (reason, detail) for quarantined rows
    formats: dict[int, str] = {}
    frames: dict[str, list[dict[str, Any]]] = {}
    seen_keys: set[str] = set()
    for i, row in enumerate(rows):
        if row.error is not None:
            reason, _, detail = row.error.partition(": ")
            outcome[i] = (reason, detail)
            continue
        fmt = dataset_format or detect_format(row.record)
        if fmt is None:
            outcome[i] = ("unknown_format", f"no known field among: {', '.join(sorted(row.record)) or 'none'}")
            continue
        try:
            columns = _columns(row.record, fmt)
        except _RowProblem as problem:
            outcome[i] = (problem.reason, problem.detail)
            continue
        key = row.key
        formats[i] = fmt
        frames.setdefault(SUITE_FOR_FORMAT[fmt], []).append({"row_id": i, **columns, "is_duplicate": key in seen_keys})
        seen_keys.add(key)

    trains_as = {TRAINS_AS[f] for f in formats.values()}
    if len(trains_as) > 1:
        found = ", ".join(sorted(set(formats.values())))
        raise DataUnusableError(f"{data_path}: mixes formats that train differently ({found}); keep one format per folder")

    versions = {}
    for suite_name, records in frames.items():
        suite_doc = load_suite_document(suite_name)
        versions[suite_name] = suite_doc["meta"]["contract_version"]
        for row_id, failure in _run_suite(suite_doc, pd.DataFrame.from_records(records)).items():
            outcome[row_id] = failure

    examples: list[Example] = []
    quarantined: list[QuarantinedRow] = []
    per_file: dict[str, FileReport] = {}
    file_formats: dict[str, Counter] = {}
    for i, row in enumerate(rows):
        report = per_file.setdefault(row.file, FileReport(path=row.file, format=None))
        report.rows_total += 1
        if i in formats:
            file_formats.setdefault(row.file, Counter())[formats[i]] += 1
        if i in outcome:
            reason, detail = outcome[i]
            report.rows_quarantined += 1
            report.top_reasons[reason] = report.top_reasons.get(reason, 0) + 1
            quarantined.append(_quarantine(row, reason, detail))
            continue
        report.rows_valid += 1
        fmt = formats[i]
        if fmt == "text":
            examples.append(Example(row.key, row.file, row.line, text=row.record["text"]))
        else:
            examples.append(Example(row.key, row.file, row.line, messages=to_messages(row.record, fmt)))
    for name, report in per_file.items():
        if name in file_formats:
            report.format = file_formats[name].most_common(1)[0][0]
    for path in files:  # an empty file still shows in the per-file table
        display = str(path.relative_to(root)) if data_path.is_dir() else path.name
        per_file.setdefault(display, FileReport(path=display, format=None))

    all_formats = sorted(set(formats.values()))
    report = ValidationReport(
        data_path=str(data_path),
        format=all_formats[0] if len(all_formats) == 1 else ("+".join(all_formats) or None),
        contract_version=",".join(f"{k}@{v}" for k, v in sorted(versions.items())) or "none",
        rows_total=len(rows),
        rows_valid=len(examples),
        rows_quarantined=len(quarantined),
        fingerprint=fingerprint_files(files),
        files=[per_file[k] for k in sorted(per_file)],
        quarantined=quarantined,
    )
    assert report.rows_total == report.rows_valid + report.rows_quarantined
    if report_dir is not None:
        write_report(report, Path(report_dir))
    return report, examples


def _quarantine(row: Row, reason: str, detail: str) -> QuarantinedRow:
    try:
        return QuarantinedRow(row.file, row.line, reason, detail, raw=row.raw.decode("utf-8"))
    except UnicodeDecodeError:
        return QuarantinedRow(row.file, row.line, reason, detail, raw_base64=base64.b64encode(row.raw).decode("ascii"))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_report(report: ValidationReport, report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    report.report_path = str(report_dir / "validation_report.json")
    report.quarantine_path = str(report_dir / "quarantine.jsonl")
    _write_atomic(
        Path(report.quarantine_path),
        "".join(json.dumps(asdict(q), ensure_ascii=False) + "\n" for q in report.quarantined),
    )
    _write_atomic(Path(report.report_path), json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")


def check_gates(report: ValidationReport, min_valid_rows: int, max_invalid_fraction: float) -> None:
    """Stop before any model is loaded when the data is not good enough to train on."""
    where = f"; see {report.report_path}" if report.report_path else ""
    if report.invalid_fraction > max_invalid_fraction:
        first = "; ".join(f"{q.file}:{q.line} {q.reason}" for q in report.quarantined[:3])
        raise DataGateError(
            f"training_data_path: {report.rows_quarantined} of {report.rows_total} rows quarantined "
            f"({report.invalid_fraction:.1%} > max_invalid_fraction {max_invalid_fraction:.1%}): {first}{where}"
        )
    if report.rows_valid < min_valid_rows:
        raise DataGateError(
            f"training_data_path: only {report.rows_valid} valid rows (min_valid_rows is {min_valid_rows}){where}"
        )
