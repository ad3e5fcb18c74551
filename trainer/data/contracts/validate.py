"""Data contracts: every row of the training folder is valid or quarantined with a reason.

Suites live as JSON in `data_contracts/`, one per format; each expectation carries `meta.reason`,
the word a quarantined row is tagged with. A row goes through these stages, and the first problem
found is its reason:

1. reading (trainer/data/readers.py): `invalid_json`, `invalid_utf8`, `invalid_csv`,
   `not_an_object`, `ragged_row`, `missing_header`;
2. code checks GX can't express per row (contracts/checks.py, data/shapes.py, data/turns.py):
   `unknown_format`, `wrong_format`, `preference_data`, `label_false`, `unsupported_content`,
   `unsupported_field`, `unresolved_placeholder`, `not_trained`, and the nested shape of a
   conversation (`wrong_type`, `missing_field`, `invalid_json` inside a turn); each row becomes
   one line of a typed pandas frame per suite (vectorised where pandas can);
3. Great Expectations on that frame, in suite order: `missing_field` (nulls), `unknown_role`,
   `no_assistant_turn`, `bad_turn_order`, `blank_content`, `too_long`, `duplicate_row`;
4. with a tokenizer, each valid row tokenized as training will (contracts/lengths.py):
   `template_error`, `too_many_tokens` (or a warning), and text windows.

A file (or folder) of another kind of data than supervised fine-tuning rows (preference pairs,
stepwise labels, token ids) is refused whole: DataUnusableError, saying how to train on it if one can.

Invariant: rows_total == rows_valid + rows_quarantined, and input files are never modified; the
quarantine file keeps each bad row's raw bytes (base64 when not UTF-8) so nothing is lost.
"""

from __future__ import annotations

import base64
import gc
from collections import Counter
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.data.contracts.checks import Frame, RowProblem, explain, suite_of, unknown_format_detail
from trainer.data.contracts.gx import run_suites
from trainer.data.contracts.intake import Intake, fingerprint_path, read_data
from trainer.data.contracts.lengths import Lengths, check_lengths, count_tokens
from trainer.data.contracts.report import DuplicateRow, QuarantinedRow, ValidationReport, write_report
from trainer.data.contracts.suites import CONTRACTS_DIR, contract_version
from trainer.data.files import dataset_fingerprint
from trainer.data.formats import (
    FORMATS,
    NOT_SFT,
    TRAINS_AS,
    Example,
    decide_file_format,
    detect_format,
    preference_mapping,
)
from trainer.data.rows import Row
from trainer.data.turns import MERGE_SEPARATOR
from trainer.errors import DataUnusableError

__all__ = ["count_tokens", "fingerprint_path", "options_from", "validate_dataset"]

OVERLONG_POLICIES = ("warn", "quarantine")
DUPLICATE_POLICIES = ("drop", "quarantine", "keep")


def options_from(settings: Any) -> dict[str, Any]:
    """validate_dataset's data options, as a run's settings give them (one place for every caller)."""
    return {
        "dataset_format": settings.dataset_format,
        "column_mapping": settings.column_mapping,
        "overlong_rows": settings.overlong_rows,
        "text_windows": settings.text_windows,
        "text_window_overlap": settings.text_window_overlap,
        "duplicate_rows": settings.duplicate_rows,
    }


@dataclass
class _Pass:
    """One validation pass over a folder: every row, its outcome so far, and per-file bookkeeping."""

    intake: Intake
    outcome: list[tuple[str, str] | None] = field(default_factory=list)  # (reason, detail) once quarantined
    row_format: list[str | None] = field(default_factory=list)  # the format of rows that reached a frame
    row_frame: dict[int, Frame] = field(default_factory=dict)
    frames: dict[str, Frame] = field(default_factory=dict)
    duplicates: dict[int, int] = field(default_factory=dict)  # row -> the earlier row it repeats
    dropped: dict[int, int] = field(default_factory=dict)  # duplicates left out (duplicate_rows: drop)

    @property
    def rows(self) -> list[Row]:
        return self.intake.rows


@contextmanager
def _without_cyclic_gc():
    """Rows parsed from JSON hold no reference cycles, yet building 100,000s of them makes the cyclic
    collector walk everything built so far again and again: a third of validation's time. It is
    off while validating (reference counting still frees everything) and back on after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_without_cyclic_gc()
def validate_dataset(
    data_path: Path,
    report_dir: Path | None = None,
    dataset_format: str | None = None,
    *,
    column_mapping: Mapping[str, str] | None = None,
    tokenizer: Any = None,
    max_seq_length: int | None = None,
    overlong_rows: str = "warn",
    text_windows: bool = False,
    text_window_overlap: int = 0,
    duplicate_rows: str = "drop",
    contracts_dir: Path = CONTRACTS_DIR,
) -> tuple[ValidationReport, list[Example]]:
    """Validate every row under `data_path`; write the report and quarantine file to `report_dir`.

    With a `tokenizer` and `max_seq_length`, valid rows are also tokenized as training will: rows
    the template can't render are quarantined, and those over the limit are reported
    (`overlong_rows="warn"`: they stay valid and the trainer leaves them out), quarantined as
    `too_many_tokens` (`"quarantine"`), or for plain text with `text_windows`, split into windows.
    Raises DataUnusableError when there is nothing to validate, the folder mixes training formats,
    or a file holds data of another kind (preference pairs).
    """
    data_path = Path(data_path)
    if dataset_format is not None and dataset_format not in FORMATS:
        raise DataUnusableError(f"format {dataset_format!r}: unknown; choose one of {', '.join(FORMATS)}")
    if overlong_rows not in OVERLONG_POLICIES:
        raise ValueError(f"overlong_rows: {overlong_rows!r}; choose one of {', '.join(OVERLONG_POLICIES)}")
    if duplicate_rows not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicate_rows: {duplicate_rows!r}; choose one of {', '.join(DUPLICATE_POLICIES)}")
    mapping = dict(column_mapping or {})
    run = _Pass(read_data(data_path, mapping, text_files=dataset_format == "text"))  # 1. every file read once
    run.outcome = [None] * len(run.rows)
    run.row_format = [None] * len(run.rows)
    _check_shapes(run, dataset_format)  # 2. code checks: each file's format, each row's shape
    _check_one_training_format(run, data_path)
    if duplicate_rows != "keep":
        _find_duplicates(run)
    flagged = set(run.duplicates) if duplicate_rows == "quarantine" else set()  # the contract's duplicate_row
    frames = {name: f for name, f in run.frames.items() if len(f)}
    if frames:  # 3. Great Expectations, one suite per format, on the typed frames
        failures = run_suites({name: f.frame(flagged) for name, f in frames.items()}, contracts_dir)
        for row_id, (reason, detail) in failures.items():
            first = run.rows[run.duplicates[row_id]] if row_id in run.duplicates else None
            run.outcome[row_id] = (
                reason,
                explain(run.row_frame[row_id], run.rows[row_id], row_id, reason, detail, first),
            )
    if duplicate_rows == "drop":  # a copy that passed the contract is left out, not quarantined
        run.dropped = {i: first for i, first in run.duplicates.items() if run.outcome[i] is None}
    examples = {i: run.row_frame[i].example(row, i, run.row_format[i]) for i, row in _valid(run)}
    lengths = None
    if tokenizer is not None and max_seq_length and examples:  # 4. token counts, template errors, windows
        lengths = check_lengths(examples, tokenizer, max_seq_length, overlong_rows, text_windows, text_window_overlap)
        for i, problem in lengths.problems.items():
            run.outcome[i] = problem
            del examples[i]
    report = _report(run, data_path, examples, sorted(frames), contracts_dir)  # 5. per file, per reason, raw bytes
    report.dataset_format, report.column_mapping, report.overlong_rows = dataset_format, mapping, overlong_rows
    report.text_windows, report.duplicate_rows = text_windows, duplicate_rows
    if tokenizer is not None:
        report.max_seq_length, report.tokenizer = max_seq_length, getattr(tokenizer, "name_or_path", None)
    if lengths is not None:
        _apply_lengths(report, lengths, text_window_overlap)
    if report.rows_total != report.rows_valid + report.rows_quarantined + report.rows_duplicate:  # pragma: no cover
        raise RuntimeError(
            f"row accounting broke: {report.rows_total} != {report.rows_valid} + {report.rows_quarantined} + "
            f"{report.rows_duplicate}"
        )
    if report_dir is not None:
        write_report(report, Path(report_dir))
    windows = lengths.windows if lengths is not None else {}
    return report, [e for i, example in examples.items() for e in windows.get(i, (example,))]


def _valid(run: _Pass):
    return (
        (i, row)
        for i, row in enumerate(run.rows)
        if run.outcome[i] is None and run.row_format[i] is not None and i not in run.dropped
    )


def _check_shapes(run: _Pass, dataset_format: str | None) -> None:
    """Each file's format (the forced one, or most of its rows'), then each row against it: rows of
    another or no format are quarantined, the rest go into their suite's typed frame."""
    all_rows = run.rows
    for display, (start, end) in run.intake.file_rows.items():
        rows = all_rows[start:end]
        detected = [detect_format(r.record) if r.record is not None else None for r in rows]
        majority = decide_file_format(detected)
        if majority in NOT_SFT:
            _refuse(display, majority, next(r.record for r, f in zip(rows, detected, strict=True) if f == majority))
        fmt = dataset_format or majority
        run.intake.file_reports[display].format = fmt
        for i, row_fmt in enumerate(detected, start):
            row = all_rows[i]
            if row.error is not None:
                reason, _, detail = row.error.partition(": ")
                run.outcome[i] = (reason, detail)
            elif row_fmt is None:
                run.outcome[i] = ("unknown_format", unknown_format_detail(row.record, fmt))
            elif row_fmt == "preference" and fmt != row_fmt:
                run.outcome[i] = (
                    "preference_data",
                    f"a preference row (chosen / rejected) in a {fmt} file; supervised fine-tuning trains neither "
                    "answer",
                )
            elif row_fmt != fmt:
                why = f"dataset_format is {fmt}" if dataset_format else f"the file is {fmt} (most of its rows)"
                run.outcome[i] = ("wrong_format", f"a {row_fmt} row, but {why}; keep one format per file")
            else:
                _add_to_frame(run, i, row.record, fmt)


def _add_to_frame(run: _Pass, i: int, record: dict[str, Any], fmt: str) -> None:
    suite = suite_of(fmt, record)
    frame = run.frames.get(suite)
    if frame is None:
        frame = run.frames[suite] = Frame(suite)
    try:
        frame.add(i, record, fmt)
    except RowProblem as problem:
        run.outcome[i] = (problem.reason, problem.detail)
        return
    except RecursionError:
        run.outcome[i] = ("wrong_type", "the row is nested too deeply")
        return
    run.row_format[i], run.row_frame[i] = fmt, frame


def _refuse(display: str, kind: str, record: dict[str, Any]) -> None:
    what, how = NOT_SFT[kind]
    what = f"{display}: {what}, which supervised fine-tuning can't train on"
    if kind != "preference":
        raise DataUnusableError(what + how)
    mapping = preference_mapping(record)
    setting = ", ".join(f"{k}: {v}" for k, v in mapping.items())
    flags = " ".join(f"--map {k}={v}" for k, v in mapping.items())
    raise DataUnusableError(f"{what}; to train on the chosen answers set column_mapping: {{{setting}}} (CLI: {flags})")


def _find_duplicates(run: _Pass) -> None:
    """Exact duplicates over the whole folder, among rows that reached a frame (the first copy stays)."""
    first_copy: dict[str, int] = {}
    rows = run.rows
    for i, fmt in enumerate(run.row_format):
        if fmt is not None:
            first = first_copy.setdefault(rows[i].key, i)
            if first != i:
                run.duplicates[i] = first


def _apply_lengths(report: ValidationReport, lengths: Lengths, overlap: int) -> None:
    report.overlong, report.rows_overlong, report.max_tokens = (
        lengths.overlong,
        len(lengths.overlong),
        lengths.max_tokens,
    )
    if lengths.windows:
        report.rows_windowed, report.windows = len(lengths.windows), sum(len(w) for w in lengths.windows.values())
        report.notes.append(
            f"{report.rows_windowed} text row(s) over max_seq_length were split into {report.windows} windows "
            f"({overlap} tokens of overlap)"
        )
    if lengths.tool_ids:
        report.notes.append(
            f"{lengths.tool_ids} row(s) call tools and the chat template demands 9-character alphanumeric tool-call "
            "ids: their ids were derived from each row's content and call index (the same for a call and its result)"
        )
    if lengths.folded:
        report.notes.append(
            f"{lengths.folded} row(s) have a system prompt and the chat template has no system role: it was put at "
            "the start of the first user turn"
        )


def _merge_note(run: _Pass, examples: dict[int, Example], report: ValidationReport) -> None:
    merged = [run.row_frame[i].conversations[i].merged for i in examples if run.row_frame[i].suite == "chat"]
    report.rows_merged, report.turns_merged = sum(1 for m in merged if m), sum(merged)
    if report.rows_merged:
        report.notes.append(
            f"{report.rows_merged} row(s) had consecutive turns from one role: {report.turns_merged} turn(s) merged "
            f"into the turn before them (contents joined by {MERGE_SEPARATOR!r})"
        )


def _report(
    run: _Pass, data_path: Path, examples: dict[int, Example], suites: list[str], contracts_dir: Path
) -> ValidationReport:
    quarantined: list[QuarantinedRow] = []
    duplicates: list[DuplicateRow] = []
    for display, (start, end) in run.intake.file_rows.items():
        file_report = run.intake.file_reports[display]
        file_report.rows_total, file_report.rows_valid, file_report.rows_quarantined = end - start, 0, 0
        file_report.rows_duplicate = 0
        file_report.top_reasons = {}
        for i in range(start, end):
            if i in run.dropped:
                file_report.rows_duplicate += 1
                first = run.rows[run.dropped[i]]
                duplicates.append(DuplicateRow(run.rows[i].file, run.rows[i].line, first.file, first.line))
                continue
            if run.outcome[i] is None:
                file_report.rows_valid += 1
                continue
            reason, detail = run.outcome[i]
            file_report.rows_quarantined += 1
            file_report.top_reasons[reason] = file_report.top_reasons.get(reason, 0) + 1
            quarantined.append(_quarantine(run.rows[i], reason, detail))
        file_report.top_reasons = dict(sorted(file_report.top_reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    reports = list(run.intake.file_reports.values())
    formats = sorted({r.format for r in reports if r.format and r.rows_total})
    report = ValidationReport(
        data_path=str(data_path),
        format=formats[0] if len(formats) == 1 else ("+".join(formats) or None),
        contract_version=contract_version(suites, contracts_dir) if suites else "none",
        rows_total=len(run.rows),
        rows_valid=len(examples),
        rows_quarantined=len(quarantined),
        fingerprint=dataset_fingerprint(run.intake.digests),
        files=reports,
        quarantined=quarantined,
        trains_as=TRAINS_AS[formats[0]] if formats else None,
        reasons=dict(Counter(q.reason for q in quarantined).most_common()),
        ignored_files=list(run.intake.ignored),
        warnings=list(run.intake.warnings),
        rows_duplicate=len(duplicates),
        duplicates=duplicates,
    )
    if duplicates:
        first = duplicates[0]
        report.notes.append(
            f"{len(duplicates)} exact duplicate row(s) left out, the first copy of each trained once (first: "
            f"{first.file}:{first.line} repeats {first.first_file}:{first.first_line}; all in the report; "
            "duplicate_rows: keep trains every copy)"
        )
    _merge_note(run, examples, report)
    return report


def _check_one_training_format(run: _Pass, data_path: Path) -> None:
    """A folder may mix formats only when they all become the same training text (chat or text)."""
    first_file: dict[str, Any] = {}
    for report in run.intake.file_reports.values():
        if report.format is not None:
            first_file.setdefault(TRAINS_AS[report.format], report)
    if len(first_file) > 1:
        found = " but ".join(f"{r.path} is {r.format}" for r in first_file.values())
        raise DataUnusableError(
            f"{data_path}: mixes formats that train differently ({found}): chat formats use the chat template, "
            "text trains on plain text; keep them in separate folders"
        )


def _quarantine(row: Row, reason: str, detail: str) -> QuarantinedRow:
    try:
        return QuarantinedRow(row.file, row.line, reason, detail, raw=row.raw.decode("utf-8"))
    except UnicodeDecodeError:
        return QuarantinedRow(row.file, row.line, reason, detail, raw_base64=base64.b64encode(row.raw).decode("ascii"))
