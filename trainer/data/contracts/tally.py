"""What validation counts as it goes, chunk by chunk, and the report it becomes: per-file counts,
every quarantined row with its raw bytes, the dropped duplicates and where their first copies are,
and the notes on what validation changed in valid rows.

Kept across chunks: the counts, the quarantined and duplicate rows (the report lists every one),
and FirstCopies, 16 bytes of each row's key and one integer for where it is (about 120 MB for a
million rows), so duplicates are found over the whole folder whatever the chunk size.
"""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from trainer.data.contracts.lengths import Lengths
from trainer.data.contracts.report import DuplicateRow, QuarantinedRow, ValidationReport
from trainer.data.contracts.suites import contract_version
from trainer.data.files import dataset_fingerprint
from trainer.data.formats import TRAINS_AS, Example
from trainer.data.rows import Row
from trainer.data.turns import MERGE_SEPARATOR

if TYPE_CHECKING:
    from trainer.data.contracts.intake import Intake

_LINE_BITS = 40  # where = file number << 40 | line: one int per row, lines up to 10^12


class Where(NamedTuple):
    file: str
    line: int


class FirstCopies:
    """Row key -> where the first row with that content is, over the whole folder."""

    def __init__(self) -> None:
        self._files: list[str] = []
        self._numbers: dict[str, int] = {}
        self._first: dict[bytes, int] = {}

    def first(self, row: Row) -> Where | None:
        """Where the first copy of `row` is, or None when `row` is the first."""
        number = self._numbers.get(row.file)
        if number is None:
            number = self._numbers[row.file] = len(self._files)
            self._files.append(row.file)
        here = number << _LINE_BITS | row.line
        found = self._first.setdefault(bytes.fromhex(row.key[:32]), here)
        if found == here:
            return None
        return Where(self._files[found >> _LINE_BITS], found & ((1 << _LINE_BITS) - 1))


class Tally:
    def __init__(self) -> None:
        self.rows = self.valid = self.rows_merged = self.turns_merged = 0
        self.quarantined: list[QuarantinedRow] = []
        self.duplicates: list[DuplicateRow] = []
        self.lengths: Lengths | None = None
        self.rows_windowed = self.windows = 0
        self.placeholders: list[Where] = []  # valid rows whose answers hold {{name}} / {{author}} (warn)
        self.rows_uncalled = 0  # valid rows with a tool result after an assistant turn that calls no tool

    def add(self, run: Any, examples: dict[int, Example]) -> None:
        """One checked chunk (validate._Pass): its rows counted per file and per outcome."""
        self.rows += len(run.rows)
        self.valid += len(examples)
        for display, (start, end) in run.intake.file_rows.items():
            file_report = run.intake.file_reports[display]
            file_report.rows_total += end - start
            for i in range(start, end):
                if i in run.dropped:
                    file_report.rows_duplicate += 1
                    first = run.dropped[i]
                    self.duplicates.append(DuplicateRow(run.rows[i].file, run.rows[i].line, first.file, first.line))
                    continue
                if run.outcome[i] is None:
                    file_report.rows_valid += 1
                    continue
                reason, detail = run.outcome[i]
                file_report.rows_quarantined += 1
                file_report.top_reasons[reason] = file_report.top_reasons.get(reason, 0) + 1
                self.quarantined.append(quarantine_row(run.rows[i], reason, detail))
        shapes = [run.row_frame[i].conversations[i] for i in examples if run.row_frame[i].suite == "chat"]
        self.rows_merged += sum(1 for shape in shapes if shape.merged)
        self.turns_merged += sum(shape.merged for shape in shapes)
        self.rows_uncalled += sum(1 for shape in shapes if shape.uncalled)

    def add_lengths(self, part: Lengths) -> None:
        if self.lengths is None:
            self.lengths = Lengths()
        total = self.lengths
        total.overlong += part.overlong
        if part.max_tokens is not None:
            total.max_tokens = max(total.max_tokens or 0, part.max_tokens)
        total.folded += part.folded
        total.tool_ids += part.tool_ids
        self.rows_windowed += len(part.windows)
        self.windows += sum(len(w) for w in part.windows.values())

    def report(self, intake: Intake, data_path: Path, suites: set[str], contracts_dir: Path) -> ValidationReport:
        reports = list(intake.file_reports.values())
        for file_report in reports:
            file_report.top_reasons = dict(sorted(file_report.top_reasons.items(), key=lambda kv: (-kv[1], kv[0])))
        formats = sorted({r.format for r in reports if r.format and r.rows_total})
        quarantined, duplicates = self.quarantined, self.duplicates
        report = ValidationReport(
            data_path=str(data_path),
            format=formats[0] if len(formats) == 1 else ("+".join(formats) or None),
            contract_version=contract_version(sorted(suites), contracts_dir) if suites else "none",
            rows_total=self.rows,
            rows_valid=self.valid,
            rows_quarantined=len(quarantined),
            fingerprint=dataset_fingerprint(intake.digests),
            files=reports,
            quarantined=quarantined,
            trains_as=TRAINS_AS[formats[0]] if formats else None,
            reasons=dict(Counter(q.reason for q in quarantined).most_common()),
            ignored_files=list(intake.ignored),
            warnings=list(intake.warnings),
            rows_duplicate=len(duplicates),
            duplicates=duplicates,
            rows_merged=self.rows_merged,
            turns_merged=self.turns_merged,
        )
        if duplicates:
            first = duplicates[0]
            report.notes.append(
                f"{len(duplicates)} exact duplicate row(s) left out, the first copy of each trained once (first: "
                f"{first.file}:{first.line} repeats {first.first_file}:{first.first_line}; all in the report; "
                "duplicate_rows: keep trains every copy)"
            )
        if self.rows_merged:
            report.notes.append(
                f"{self.rows_merged} row(s) had consecutive turns from one role: {self.turns_merged} turn(s) merged "
                f"into the turn before them (contents joined by {MERGE_SEPARATOR!r})"
            )
        if self.rows_uncalled:
            report.notes.append(
                f"{self.rows_uncalled} row(s) have a tool result after an assistant turn that calls no tool (the call "
                "written as text): kept, the result read as the answer to that text, as LLaMA-Factory reads them"
            )
        if self.placeholders:
            first = self.placeholders[0]
            report.rows_placeholder = len(self.placeholders)
            report.notes.append(
                f"{len(self.placeholders)} row(s) have answers holding LLaMA-Factory's {{{{name}}}} / {{{{author}}}} "
                f"placeholders (first: {first.file}:{first.line}): trained as written; replace them in the data to "
                "give the model its name, or set unresolved_placeholders: quarantine to leave those rows out"
            )
        report.rows_uncalled_tool_results = self.rows_uncalled
        return report

    def apply_lengths(self, report: ValidationReport, overlap: int) -> None:
        lengths = self.lengths
        if lengths is None:
            return
        report.overlong, report.rows_overlong, report.max_tokens = (
            lengths.overlong,
            len(lengths.overlong),
            lengths.max_tokens,
        )
        if self.rows_windowed:
            report.rows_windowed, report.windows = self.rows_windowed, self.windows
            report.notes.append(
                f"{report.rows_windowed} text row(s) over max_seq_length were split into {report.windows} windows "
                f"({overlap} tokens of overlap)"
            )
        if lengths.tool_ids:
            report.notes.append(
                f"{lengths.tool_ids} row(s) call tools and the chat template demands 9-character alphanumeric "
                "tool-call ids: their ids were derived from each row's content and call index (the same for a call "
                "and its result)"
            )
        if lengths.folded:
            report.notes.append(
                f"{lengths.folded} row(s) have a system prompt and the chat template has no system role: it was put "
                "at the start of the first user turn"
            )


def quarantine_row(row: Row, reason: str, detail: str) -> QuarantinedRow:
    try:
        return QuarantinedRow(row.file, row.line, reason, detail, raw=row.raw.decode("utf-8"))
    except UnicodeDecodeError:
        return QuarantinedRow(row.file, row.line, reason, detail, raw_base64=base64.b64encode(row.raw).decode("ascii"))
