"""The validation report and its gates: per-file counts, every quarantined row with its raw bytes,
rows over the token limit; written atomically, rendered for the terminal and for Prefect.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.errors import DataGateError


@dataclass
class QuarantinedRow:
    file: str
    line: int
    reason: str
    detail: str
    raw: str | None = None  # the original line when it is valid UTF-8
    raw_base64: str | None = None  # otherwise its bytes, so nothing is lost


@dataclass
class OverlongRow:
    file: str
    line: int
    tokens: int


@dataclass
class FileReport:
    path: str
    format: str | None
    rows_total: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0  # exact duplicates dropped (duplicate_rows: drop): neither valid nor quarantined
    top_reasons: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    sha256: str = ""


@dataclass
class DuplicateRow:
    """A row dropped as an exact duplicate, and the first copy that is trained instead."""

    file: str
    line: int
    first_file: str
    first_line: int


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
    trains_as: str | None = None  # chat (chat template) or text (plain text)
    dataset_format: str | None = None  # the forced format, if any
    column_mapping: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    ignored_files: list[str] = field(default_factory=list)  # files under the folder that are not read
    warnings: list[str] = field(default_factory=list)  # files that look like data but are not read, and why
    notes: list[str] = field(default_factory=list)  # what validation changed in valid rows (merged turns, windows)
    rows_placeholder: int = 0  # valid rows whose answers hold {{name}} / {{author}} (unresolved_placeholders: warn)
    rows_uncalled_tool_results: int = 0  # valid rows with a tool result after an assistant turn without tool calls
    rows_merged: int = 0  # valid rows in which consecutive turns of one role were merged
    turns_merged: int = 0  # turns merged into the turn before them
    text_windows: bool = False
    rows_windowed: int = 0  # plain-text rows over max_seq_length split into windows
    windows: int = 0  # the windows they became (each one training example)
    max_seq_length: int | None = None  # set when tokens were counted
    overlong_rows: str = "warn"
    tokenizer: str | None = None
    max_tokens: int | None = None
    rows_overlong: int = 0
    overlong: list[OverlongRow] = field(default_factory=list)
    duplicate_rows: str = "drop"
    rows_duplicate: int = 0  # dropped exact duplicates: rows_total == valid + quarantined + these
    duplicates: list[DuplicateRow] = field(default_factory=list)

    @property
    def invalid_fraction(self) -> float:
        return self.rows_quarantined / self.rows_total if self.rows_total else 0.0

    @property
    def rows_trainable(self) -> int:
        """Valid rows the trainer will keep: over-long rows it leaves out when they were only warned about."""
        return self.rows_valid - (self.rows_overlong if self.overlong_rows == "warn" else 0)

    def reason_counts(self) -> Counter:
        return Counter(q.reason for q in self.quarantined)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_report(
    report: ValidationReport,
    report_dir: Path | None = None,
    *,
    report_path: Path | None = None,
    quarantine_path: Path | None = None,
) -> None:
    """Write `validation_report.json` and `quarantine.jsonl` into `report_dir` (or to the paths
    given), each atomically: a crash never leaves a half-written report."""
    if report_path is None:
        report_path = Path(report_dir) / "validation_report.json"
    if quarantine_path is None:
        quarantine_path = (
            Path(report_dir) / "quarantine.jsonl"
            if report_dir is not None
            else report_path.with_suffix(".quarantine.jsonl")
        )
    report.report_path, report.quarantine_path = str(report_path), str(quarantine_path)
    _write_atomic(
        Path(quarantine_path), "".join(json.dumps(asdict(q), ensure_ascii=False) + "\n" for q in report.quarantined)
    )
    _write_atomic(Path(report_path), json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")


def check_gates(report: ValidationReport, min_valid_rows: int, max_invalid_fraction: float) -> None:
    """Stop before any model is loaded when the data is not good enough to train on."""
    where = f"; see {report.report_path}" if report.report_path else ""
    if report.rows_total == 0:
        raise DataGateError(
            f"training_data_path: the {len(report.files)} data file(s) hold no rows (empty, or blank lines only){where}"
        )
    if report.invalid_fraction > max_invalid_fraction:
        shown = 3
        first = "; ".join(f"{q.file}:{q.line} {q.reason}" for q in report.quarantined[:shown])
        more = f" (+{report.rows_quarantined - shown} more)" if report.rows_quarantined > shown else ""
        raise DataGateError(
            f"training_data_path: {report.rows_quarantined} of {report.rows_total} rows quarantined "
            f"({report.invalid_fraction:.1%} > max_invalid_fraction {max_invalid_fraction:.1%}): {first}{more}{where}"
        )
    if report.rows_trainable < min_valid_rows:
        overlong = (
            f", {report.rows_overlong} of them over max_seq_length"
            if report.rows_trainable != report.rows_valid
            else ""
        )
        raise DataGateError(
            f"training_data_path: only {report.rows_trainable} rows to train on ({report.rows_valid} valid{overlong}; "
            f"min_valid_rows is {min_valid_rows}){where}"
        )


# --- Rendering: one view of a report, drawn as terminal lines (CLI) or markdown (Prefect artifact) ---


@dataclass
class ReportView:
    """What a person is shown of a validation report beyond its counts, decided once for every renderer."""

    file_columns: tuple[str, ...]
    file_rows: list[tuple[str, ...]]
    quarantined: list[tuple[str, str, str]]  # (file:line, reason, detail), the first max_rows
    more_quarantined: int
    overlong: list[tuple[str, int]]  # (file:line, tokens), the first max_rows
    ignored: list[str]
    warnings: list[str]
    notes: list[str]


def report_view(report: ValidationReport, max_rows: int = 10) -> ReportView:
    rows = []
    for f in report.files:
        reasons = ", ".join(f"{k} ×{v}" for k, v in list(f.top_reasons.items())[:3])
        rows.append((f.path, f.format or "-", str(f.rows_total), str(f.rows_valid), str(f.rows_quarantined), reasons))
    return ReportView(
        file_columns=("file", "format", "rows", "valid", "quarantined", "top reasons"),
        file_rows=rows,
        quarantined=[(f"{q.file}:{q.line}", q.reason, q.detail) for q in report.quarantined[:max_rows]],
        more_quarantined=max(0, report.rows_quarantined - max_rows),
        overlong=[(f"{o.file}:{o.line}", o.tokens) for o in report.overlong[:max_rows]],
        ignored=list(report.ignored_files),
        warnings=list(report.warnings),
        notes=list(report.notes),
    )


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_markdown(report: ValidationReport, cached: bool = False, max_rows: int = 10) -> str:
    """The Prefect artifact of the validate stage: the counts, then the report view as markdown."""
    view = report_view(report, max_rows)
    overlong = (
        f", {report.rows_overlong} over max_seq_length {report.max_seq_length} tokens ({report.overlong_rows})"
        if report.rows_overlong
        else ""
    )
    lines = [
        f"**{report.rows_valid}/{report.rows_total}** rows valid, **{report.rows_quarantined}** quarantined{overlong}"
        f"{f', {report.rows_duplicate} exact duplicates left out' if report.rows_duplicate else ''}; "
        f"format `{report.format}`, contract `{report.contract_version}`, fingerprint `{report.fingerprint[:16]}`"
        f"{' (cached result)' if cached else ''}.",
        "",
        "| " + " | ".join(view.file_columns) + " |",
        "|---|---|---:|---:|---:|---|",
    ]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in view.file_rows]
    if view.quarantined:
        lines += ["", "First quarantined rows:", ""]
        lines += [f"- `{_md(where)}` **{reason}**: {_md(detail)}" for where, reason, detail in view.quarantined]
        if view.more_quarantined:
            lines.append(f"- … {view.more_quarantined} more in the quarantine file")
    if view.overlong:
        lines += ["", f"Rows over max_seq_length ({report.max_seq_length} tokens):", ""]
        lines += [f"- `{_md(where)}`: {tokens} tokens" for where, tokens in view.overlong]
    if view.ignored:
        lines += ["", f"Not read: {', '.join(_md(p) for p in view.ignored[:10])}"]
    if view.warnings or view.notes:
        lines += [""] + [f"- warning: {_md(w)}" for w in view.warnings] + [f"- note: {_md(n)}" for n in view.notes]
    lines += ["", f"Report: `{report.report_path}`; quarantine: `{report.quarantine_path}`"]
    return "\n".join(lines)
