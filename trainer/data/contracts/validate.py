"""Data contracts: every row of the training folder is valid or quarantined with a reason.

Suites live as JSON in `data_contracts/`, one per format; each expectation carries `meta.reason`,
the word a quarantined row is tagged with. A first read decides each file's format (most of its
rows); then rows are checked a chunk at a time (CHUNK_ROWS), so memory does not grow with the data.
A row goes through these stages, and the first problem found is its reason:

1. reading (trainer/data/readers.py): `invalid_json`, `invalid_utf8`, `invalid_csv`,
   `not_an_object`, `ragged_row`, `missing_header`;
2. code checks GX can't express per row (contracts/checks.py, data/shapes.py, data/turns.py):
   `unknown_format`, `wrong_format`, `preference_data`, `label_false`, `unsupported_content`,
   `unsupported_field`, `unresolved_placeholder` (if asked), `not_trained`, and the nested shape of a
   conversation (`wrong_type`, `missing_field`, `invalid_json` inside a turn); each row becomes
   one line of a typed pandas frame per suite (vectorised where pandas can);
3. Great Expectations on that frame, in suite order: `missing_field` (nulls), `unknown_role`,
   `no_assistant_turn`, `bad_turn_order`, `blank_content`, `too_long`, `duplicate_row`;
4. with a tokenizer, each valid row tokenized as training will (contracts/lengths.py):
   `template_error`, `too_many_tokens` (or a warning), and text windows.

A file (or folder) of another kind of data than supervised fine-tuning rows (preference pairs,
stepwise labels, token ids) is refused whole: DataUnusableError, saying how to train on it if one can.

Invariant: rows_total == rows_valid + rows_quarantined + rows_duplicate (exact copies left out), and
input files are never modified; the quarantine file keeps each bad row's raw bytes (base64 when not
UTF-8) so nothing is lost.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.data.contracts.checks import Frame, RowProblem, explain, suite_of, unknown_format_detail
from trainer.data.contracts.gx import run_suites
from trainer.data.contracts.intake import Intake, file_rows, fingerprint_path, open_data
from trainer.data.contracts.lengths import check_lengths, count_tokens
from trainer.data.contracts.report import ValidationReport, write_report
from trainer.data.contracts.suites import CONTRACTS_DIR
from trainer.data.contracts.tally import FirstCopies, Tally, Where
from trainer.data.example_table import ExampleWriter
from trainer.data.formats import (
    FORMATS,
    NOT_SFT,
    TRAINS_AS,
    Example,
    detect_format,
    majority_format,
    preference_mapping,
)
from trainer.data.rows import Row
from trainer.data.turns import placeholder_in
from trainer.errors import DataUnusableError
from trainer.model.progress import RowProgress
from trainer.model.token_pool import TokenPool, processes_for

__all__ = ["count_tokens", "fingerprint_path", "options_from", "validate_dataset"]

OVERLONG_POLICIES = ("warn", "quarantine")
DUPLICATE_POLICIES = ("drop", "quarantine", "keep")
PLACEHOLDER_POLICIES = ("warn", "quarantine")
CHUNK_ROWS = 20_000  # rows checked together: memory per chunk ~0.25 GB; Great Expectations runs once per chunk


def options_from(settings: Any) -> dict[str, Any]:
    """validate_dataset's data options, as a run's settings give them (one place for every caller)."""
    return {
        "dataset_format": settings.dataset_format,
        "column_mapping": settings.column_mapping,
        "overlong_rows": settings.overlong_rows,
        "text_windows": settings.text_windows,
        "text_window_overlap": settings.text_window_overlap,
        "duplicate_rows": settings.duplicate_rows,
        "unresolved_placeholders": settings.unresolved_placeholders,
        "tokenize_processes": settings.tokenize_processes,
    }


@dataclass
class _Pass:
    """One validation pass over a folder: every row, its outcome so far, and per-file bookkeeping."""

    intake: Intake
    outcome: list[tuple[str, str] | None] = field(default_factory=list)  # (reason, detail) once quarantined
    row_format: list[str | None] = field(default_factory=list)  # the format of rows that reached a frame
    row_frame: dict[int, Frame] = field(default_factory=dict)
    frames: dict[str, Frame] = field(default_factory=dict)
    duplicates: dict[int, Where] = field(default_factory=dict)  # row -> where the earlier copy it repeats is
    dropped: dict[int, Where] = field(default_factory=dict)  # duplicates left out (duplicate_rows: drop)

    @property
    def rows(self) -> list[Row]:
        return self.intake.rows


@dataclass
class _Check:
    """What every chunk is checked with, and what is counted across chunks."""

    dataset_format: str | None
    duplicate_rows: str
    contracts_dir: Path
    tokenizer: Any  # None: no token step
    pool: TokenPool | None = None  # tokenizes in worker processes (trainer/model/token_pool.py)
    lengths_options: tuple = ()  # max_seq_length, overlong_rows, text_windows, overlap
    placeholders: str = "warn"  # unresolved_placeholders
    suites: set[str] = field(default_factory=set)
    first_copies: FirstCopies = field(default_factory=FirstCopies)
    tally: Tally = field(default_factory=Tally)


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
    unresolved_placeholders: str = "warn",
    tokenize_processes: int = 0,
    contracts_dir: Path = CONTRACTS_DIR,
    examples_path: Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[ValidationReport, Sequence[Example]]:
    """Validate every row under `data_path`; write the report and quarantine file to `report_dir`.

    With a `tokenizer` and `max_seq_length`, valid rows are also tokenized as training will: rows
    the template can't render are quarantined, and those over the limit are reported
    (`overlong_rows="warn"`: they stay valid and the trainer leaves them out), quarantined as
    `too_many_tokens` (`"quarantine"`), or for plain text with `text_windows`, split into windows.
    Rows are tokenized in `tokenize_processes` processes (0: trainer.model.token_pool decides).
    Raises DataUnusableError when there is nothing to validate, the folder mixes training formats,
    or a file holds data of another kind (preference pairs).

    Rows are checked `chunk_rows` at a time, so memory does not grow with the data: with
    `examples_path`, the valid rows go to that Arrow file as they are found and an ExampleTable over
    it is returned (else a list). Only each file's format (pass 1) and the first copy of every row
    (16 bytes of its key) are kept across chunks, so the result is the same for any chunk size.
    """
    data_path = Path(data_path)
    if dataset_format is not None and dataset_format not in FORMATS:
        raise DataUnusableError(f"format {dataset_format!r}: unknown; choose one of {', '.join(FORMATS)}")
    if overlong_rows not in OVERLONG_POLICIES:
        raise ValueError(f"overlong_rows: {overlong_rows!r}; choose one of {', '.join(OVERLONG_POLICIES)}")
    if duplicate_rows not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicate_rows: {duplicate_rows!r}; choose one of {', '.join(DUPLICATE_POLICIES)}")
    if unresolved_placeholders not in PLACEHOLDER_POLICIES:
        raise ValueError(
            f"unresolved_placeholders: {unresolved_placeholders!r}; choose one of {', '.join(PLACEHOLDER_POLICIES)}"
        )
    mapping = dict(column_mapping or {})
    intake = open_data(data_path, text_files=dataset_format == "text")  # every file found and hashed
    formats, total = _decide_formats(intake, data_path, dataset_format, mapping)  # 1. each file's format (a first read)
    check = _Check(dataset_format, duplicate_rows, contracts_dir, tokenizer if max_seq_length else None)
    check.placeholders = unresolved_placeholders
    check.lengths_options = (max_seq_length, overlong_rows, text_windows, text_window_overlap)
    writer = ExampleWriter(examples_path) if examples_path is not None else None
    kept: list[Example] = []
    progress = RowProgress("validating", total)
    processes = processes_for(total, tokenize_processes) if check.tokenizer is not None else 1
    try:
        with TokenPool(check.tokenizer, processes) as check.pool:  # one for all chunks: workers take seconds to start
            for chunk in _chunks(intake, data_path, mapping, chunk_rows):  # 2.-5. one chunk of rows at a time
                examples = _check_chunk(chunk, formats, check)
                writer.add(examples) if writer is not None else kept.extend(examples)
                progress.advance(len(chunk.rows))
                full = len(chunk.rows) >= chunk_rows
                del chunk, examples
                if full:  # more chunks may follow: free the reference cycles Great Expectations left (a full
                    gc.collect()  # collection costs ~0.1 s, too much for each small validation, e.g. the fuzz tests)
        report = check.tally.report(intake, data_path, check.suites, contracts_dir)
        result = writer.close() if writer is not None else kept
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    progress.finish()
    report.dataset_format, report.column_mapping, report.overlong_rows = dataset_format, mapping, overlong_rows
    report.text_windows, report.duplicate_rows = text_windows, duplicate_rows
    if tokenizer is not None:
        report.max_seq_length, report.tokenizer = max_seq_length, getattr(tokenizer, "name_or_path", None)
    check.tally.apply_lengths(report, text_window_overlap)
    if report.rows_total != report.rows_valid + report.rows_quarantined + report.rows_duplicate:  # pragma: no cover
        raise RuntimeError(
            f"row accounting broke: {report.rows_total} != {report.rows_valid} + {report.rows_quarantined} + "
            f"{report.rows_duplicate}"
        )
    if report_dir is not None:
        write_report(report, Path(report_dir))
    return report, result


def _decide_formats(
    intake: Intake, data_path: Path, dataset_format: str | None, mapping: Mapping[str, str]
) -> tuple[dict[str, str | None], int]:
    """Each file's format: the forced one, or the one most of its rows have (read once for this), and
    the number of rows. Refuses a file of another kind of data, and a folder whose formats train differently."""
    formats: dict[str, str | None] = {}
    total = 0
    for display in list(intake.file_reports):
        counts: Counter[str] = Counter()
        first_of: dict[str, dict[str, Any]] = {}
        for row in file_rows(intake, display, data_path, mapping):
            total += 1
            if row.record is not None:
                kind = detect_format(row.record)
                if kind is not None:
                    counts[kind] += 1
                    first_of.setdefault(kind, row.record)
        if display not in intake.file_reports:  # not records: ignored, with a warning
            continue
        majority = majority_format(counts)
        if majority in NOT_SFT:
            _refuse(display, majority, first_of[majority])
        formats[display] = intake.file_reports[display].format = dataset_format or majority
    _check_one_training_format(intake, data_path)
    return formats, total


def _chunks(intake: Intake, data_path: Path, mapping: Mapping[str, str], size: int) -> Iterator[Intake]:
    """The rows of every file, `size` at a time (a chunk may hold the end of one file and the start
    of the next); each chunk an Intake of its own that shares the folder's file reports."""
    rows: list[Row] = []
    spans: dict[str, tuple[int, int]] = {}
    for display in list(intake.file_reports):
        start = len(rows)
        for row in file_rows(intake, display, data_path, mapping):
            rows.append(row)
            if len(rows) >= size:
                spans[display] = (start, len(rows))
                yield Intake(rows=rows, file_rows=spans, file_reports=intake.file_reports)
                rows, spans, start = [], {}, 0
        spans[display] = (start, len(rows))
    if rows or spans:
        yield Intake(rows=rows, file_rows=spans, file_reports=intake.file_reports)


def _check_chunk(chunk: Intake, formats: dict[str, str | None], check: _Check) -> list[Example]:
    """Stages 2-5 on one chunk: shapes, duplicates, Great Expectations, tokens, the tally. Its valid examples."""
    run = _Pass(chunk)
    run.outcome = [None] * len(run.rows)
    run.row_format = [None] * len(run.rows)
    _check_shapes(run, formats, check.dataset_format)  # 2. code checks: each row's shape against its file's format
    if check.duplicate_rows != "keep":
        _find_duplicates(run, check.first_copies)
    flagged = set(run.duplicates) if check.duplicate_rows == "quarantine" else set()  # the contract's duplicate_row
    frames = {name: f for name, f in run.frames.items() if len(f)}
    if frames:  # 3. Great Expectations, one suite per format, on the typed frames
        check.suites.update(frames)
        failures = run_suites({name: f.frame(flagged) for name, f in frames.items()}, check.contracts_dir)
        for row_id, (reason, detail) in failures.items():
            run.outcome[row_id] = (
                reason,
                explain(run.row_frame[row_id], run.rows[row_id], row_id, reason, detail, run.duplicates.get(row_id)),
            )
    if check.duplicate_rows == "drop":  # a copy that passed the contract is left out, not quarantined
        run.dropped = {i: first for i, first in run.duplicates.items() if run.outcome[i] is None}
    examples = {i: run.row_frame[i].example(row, i, run.row_format[i]) for i, row in _valid(run)}
    _check_placeholders(run, examples, check)
    windows: dict[int, list[Example]] = {}
    if check.tokenizer is not None and examples:  # 4. token counts, template errors, windows
        lengths = check_lengths(examples, check.pool, *check.lengths_options)
        for i, problem in lengths.problems.items():
            run.outcome[i] = problem
            del examples[i]
        check.tally.add_lengths(lengths)
        windows = lengths.windows
    check.tally.add(run, examples)  # 5. per file, per reason, raw bytes
    return [e for i, example in examples.items() for e in windows.get(i, (example,))]


def _check_placeholders(run: _Pass, examples: dict[int, Example], check: _Check) -> None:
    """Answers that still hold LLaMA-Factory's identity placeholders: counted (warn) or quarantined."""
    for i, example in list(examples.items()):
        found = placeholder_in(example.messages) if example.messages is not None else None
        if found is None:
            continue
        if check.placeholders == "quarantine":
            run.outcome[i] = (
                "unresolved_placeholder",
                f"{found}; replace {{{{name}}}} and {{{{author}}}} with your model's name and author before training",
            )
            del examples[i]
        else:
            check.tally.placeholders.append(Where(example.file, example.line))


def _valid(run: _Pass):
    return (
        (i, row)
        for i, row in enumerate(run.rows)
        if run.outcome[i] is None and run.row_format[i] is not None and i not in run.dropped
    )


def _check_shapes(run: _Pass, formats: dict[str, str | None], forced: str | None) -> None:
    """Each row against its file's format: rows of another or no format are quarantined, the rest go
    into their suite's typed frame."""
    all_rows = run.rows
    for display, (start, end) in run.intake.file_rows.items():
        fmt = formats.get(display)
        for i in range(start, end):
            row = all_rows[i]
            if row.error is not None:
                reason, _, detail = row.error.partition(": ")
                run.outcome[i] = (reason, detail)
                continue
            row_fmt = detect_format(row.record)
            if row_fmt is None:
                run.outcome[i] = ("unknown_format", unknown_format_detail(row.record, fmt))
            elif row_fmt == "preference" and fmt != row_fmt:
                run.outcome[i] = (
                    "preference_data",
                    f"a preference row (chosen / rejected) in a {fmt} file; supervised fine-tuning trains neither "
                    "answer",
                )
            elif row_fmt != fmt:
                why = f"dataset_format is {fmt}" if forced else f"the file is {fmt} (most of its rows)"
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


def _find_duplicates(run: _Pass, first_copies: FirstCopies) -> None:
    """Exact duplicates over the whole folder, among rows that reached a frame (the first copy stays)."""
    rows = run.rows
    for i, fmt in enumerate(run.row_format):
        if fmt is not None:
            first = first_copies.first(rows[i])
            if first is not None:
                run.duplicates[i] = first


def _check_one_training_format(intake: Intake, data_path: Path) -> None:
    """A folder may mix formats only when they all become the same training text (chat or text)."""
    first_file: dict[str, Any] = {}
    for report in intake.file_reports.values():
        if report.format is not None:
            first_file.setdefault(TRAINS_AS[report.format], report)
    if len(first_file) > 1:
        found = " but ".join(f"{r.path} is {r.format}" for r in first_file.values())
        raise DataUnusableError(
            f"{data_path}: mixes formats that train differently ({found}): chat formats use the chat template, "
            "text trains on plain text; keep them in separate folders"
        )
