"""Data contracts: every row of the training folder is valid or quarantined with a reason.

The only module that talks to Great Expectations. Suites live as JSON in `data_contracts/`, one per
format; each expectation carries `meta.reason`, the word a quarantined row is tagged with. A row
goes through three stages, and the first problem found is its reason:

1. reading (trainer/data.py): `invalid_json`, `invalid_utf8`, `invalid_csv`, `not_an_object`,
   `ragged_row`, `missing_header`;
2. code checks GX can't express per row: `unknown_format`, `wrong_format`, and the nested shape of
   a conversation (`wrong_type`, `missing_field` inside a turn); each row becomes one line of a
   typed pandas frame per suite (vectorised where pandas can: string lengths, nulls);
3. Great Expectations on that frame, in suite order: `missing_field` (nulls), `unknown_role`,
   `no_assistant_turn`, `bad_turn_order`, `blank_content`, `too_long`, `duplicate_row`;

and, when a tokenizer is given, a token count per valid row (`too_many_tokens`, or a warning).

Invariant: rows_total == rows_valid + rows_quarantined, and input files are never modified; the
quarantine file keeps each bad row's raw bytes (base64 when not UTF-8) so nothing is lost.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.data import (
    FORMAT_FIELDS,
    FORMATS,
    SHAREGPT_ROLES,
    TRAINS_AS,
    Example,
    Row,
    dataset_fingerprint,
    decide_file_format,
    detect_format,
    discover,
    display_name,
    file_digest,
    parse_rows,
    read_file_bytes,
    to_messages,
)
from trainer.state import PROJECT_ROOT

log = logging.getLogger("llm_trainer.contracts")

CONTRACTS_DIR = PROJECT_ROOT / "data_contracts"
# ShareGPT rows are converted to chat messages and then held to the chat contract.
SUITE_FOR_FORMAT = {"chat": "chat", "sharegpt": "chat", "instruction": "instruction", "prompt_completion": "prompt_completion", "text": "text"}
# The typed columns the code builds for each suite (besides `row_id`); a suite may check only these.
SUITE_COLUMNS = {
    "chat": ("turns", "roles", "min_content_chars", "total_chars", "is_duplicate"),
    "instruction": ("instruction", "input", "output", "total_chars", "is_duplicate"),
    "prompt_completion": ("prompt", "completion", "total_chars", "is_duplicate"),
    "text": ("text", "total_chars", "is_duplicate"),
}
OVERLONG_POLICIES = ("warn", "quarantine")

# The reason vocabulary: every quarantined row carries exactly one of these.
REASONS: dict[str, str] = {
    "invalid_json": "the line is not valid JSON (or a CSV cell meant to hold JSON is not)",
    "invalid_utf8": "the line or record has bytes that are not UTF-8; its raw bytes are kept base64-encoded",
    "invalid_csv": "a CSV record the csv module can't read (a quote never closed, a stray carriage return)",
    "not_an_object": "the JSONL line is valid JSON but not an object (an array, a string, a number)",
    "ragged_row": "a CSV record with more or fewer values than the header has columns",
    "missing_header": "a CSV file whose first line names no known column: no header row",
    "unknown_format": "the row has none of the fields of any format",
    "wrong_format": "the row is of another format than the rest of its file (or than dataset_format)",
    "missing_field": "a required field is missing or null (or a conversation is empty)",
    "wrong_type": "a field has the wrong JSON type (a number or list where a string belongs)",
    "unknown_role": "a turn's role is not system, user or assistant (ShareGPT: system, human, gpt)",
    "no_assistant_turn": "the conversation has no assistant turn to learn from",
    "bad_turn_order": "turns don't alternate user/assistant after an optional system turn, ending with assistant",
    "blank_content": "a message or field is empty or whitespace only",
    "too_long": "the row is longer than the contract's character bound",
    "duplicate_row": "an exact duplicate of an earlier row (the first copy is kept)",
    "too_many_tokens": "the row is longer than max_seq_length tokens (overlong_rows: quarantine)",
}


class DataUnusableError(ValueError):
    """The input can't be validated at all (missing path, no data files, unreadable, incompatible formats)."""


class DataGateError(ValueError):
    """The data was validated but fails a gate (too few valid rows, too many quarantined)."""


class ContractError(ValueError):
    """A suite in data_contracts/ doesn't fit the validator: a bug in the contract, not in the data."""


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
    top_reasons: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    sha256: str = ""


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
    ignored_files: list[str] = field(default_factory=list)  # files under the folder that are not data
    max_seq_length: int | None = None  # set when tokens were counted
    overlong_rows: str = "warn"
    tokenizer: str | None = None
    max_tokens: int | None = None
    rows_overlong: int = 0
    overlong: list[OverlongRow] = field(default_factory=list)

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


# --- The contract documents --------------------------------------------------------------------


def load_suite_document(name: str, contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Any]:
    """One suite, checked against the validator: a version, known reasons, columns the code builds."""
    path = Path(contracts_dir) / f"{name}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: can't read the contract ({exc})") from None
    if not doc.get("meta", {}).get("contract_version"):
        raise ContractError(f"{path}: meta.contract_version is missing")
    for i, expectation in enumerate(doc.get("expectations", [])):
        reason = (expectation.get("meta") or {}).get("reason")
        if reason not in REASONS:
            raise ContractError(f"{path}: expectation {i} has meta.reason {reason!r}; use one of {', '.join(REASONS)}")
        column = expectation.get("kwargs", {}).get("column")
        if column is not None and column not in SUITE_COLUMNS[name]:
            raise ContractError(f"{path}: expectation {i} checks column {column!r}, which the validator does not build "
                                f"({', '.join(SUITE_COLUMNS[name])})")
    return doc


def contract_version(suite_names: list[str] | tuple[str, ...] = tuple(SUITE_COLUMNS), contracts_dir: Path = CONTRACTS_DIR) -> str:
    """`chat@2.0.0,text@2.0.0`: the versions of the suites named, recorded with each run."""
    return ",".join(f"{n}@{load_suite_document(n, contracts_dir)['meta']['contract_version']}" for n in sorted(set(suite_names))) or "none"


def validator_digest(contracts_dir: Path = CONTRACTS_DIR) -> str:
    """sha256 over the suites and the code that applies them (reading, checks, token counting): part
    of the validate cache key, so an edited suite (version bumped or not) or a changed check never
    reuses an old result."""
    digest = hashlib.sha256()
    code = [Path(__file__).with_name(name) for name in ("contracts.py", "data.py", "tokens.py")]
    for path in sorted(Path(contracts_dir).glob("*.json")) + code:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# --- Code checks: a row's typed columns --------------------------------------------------------


class _RowProblem(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _conversation(record: dict[str, Any], fmt: str) -> tuple[int | None, str | None, int | None, int]:
    """(turns, roles joined by commas, shortest stripped content, total chars) of a chat/ShareGPT row."""
    list_key, role_key, content_key = ("messages", "role", "content") if fmt == "chat" else ("conversations", "from", "value")
    turns = record.get(list_key)
    if turns is None:
        return None, None, None, 0  # GX: missing_field
    if not isinstance(turns, list):
        raise _RowProblem("wrong_type", f"'{list_key}' is {_kind(turns)}, expected a list of {{'{role_key}', '{content_key}'}} objects")
    roles: list[str] = []
    shortest: int | None = None
    total = 0
    for turn in turns:  # the hot loop of validation: problems are explained by _turn_problem
        if type(turn) is not dict:
            _turn_problem(turns, list_key, role_key, content_key)
        role, content = turn.get(role_key), turn.get(content_key)
        if type(role) is not str or type(content) is not str:
            _turn_problem(turns, list_key, role_key, content_key)
        roles.append(role)
        stripped = len(content.strip())
        if shortest is None or stripped < shortest:
            shortest = stripped
        total += len(content)
    if fmt == "sharegpt":
        roles = [SHAREGPT_ROLES.get(r, r) for r in roles]
    joined = ",".join(roles)
    if joined.count(",") != len(roles) - 1:  # a role holding a comma must not read as two roles
        joined = ",".join(r.replace(",", ";") for r in roles)
    return len(turns), joined, shortest, total


def _turn_problem(turns: list[Any], list_key: str, role_key: str, content_key: str) -> None:
    """Raise the _RowProblem of the first turn that is not an object with string role and content."""
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise _RowProblem("wrong_type", f"{list_key}[{i}] is {_kind(turn)}, expected an object with '{role_key}' and '{content_key}'")
        for key in (role_key, content_key):
            value = turn.get(key)
            if value is None:
                raise _RowProblem("missing_field", f"{list_key}[{i}].{key} is missing or null")
            if not isinstance(value, str):
                raise _RowProblem("wrong_type", f"{list_key}[{i}].{key} is {_kind(value)}, expected a string")


def _text_field(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None or isinstance(value, str):
        return value  # None -> GX: missing_field (or fine, for an optional field)
    raise _RowProblem("wrong_type", f"'{name}' is {_kind(value)}, expected a string")


class _Frame:
    """The typed columns of one suite, built row by row, then one pandas DataFrame."""

    def __init__(self, suite: str):
        self.suite = suite
        built = ("turns", "roles", "min_content_chars", "total_chars") if suite == "chat" else FORMAT_FIELDS[suite]
        self.columns: dict[str, list[Any]] = {"row_id": [], **{c: [] for c in built}}
        self.lists = list(self.columns.values())

    def add(self, row_id: int, record: dict[str, Any], fmt: str) -> None:
        """Append a row's columns; _RowProblem (and nothing appended) for a wrong shape."""
        if self.suite == "chat":
            values = _conversation(record, fmt)
        else:
            values = [_text_field(record, name) for name in FORMAT_FIELDS[fmt]]
        for column, value in zip(self.lists, (row_id, *values)):
            column.append(value)

    def frame(self, duplicates: set[int]):
        import pandas as pd

        frame = pd.DataFrame(self.columns)
        if self.suite == "chat":
            for name in ("turns", "min_content_chars"):  # float: NaN where `messages` is null; GX's
                frame[name] = frame[name].astype("float64")  # range checks vectorise on floats, not on Int64
        else:  # vectorised: string lengths of the format's fields, nulls counting 0
            frame["total_chars"] = sum(frame[n].str.len().fillna(0).astype("int64") for n in FORMAT_FIELDS[self.suite])
        frame["is_duplicate"] = frame["row_id"].isin(duplicates) if duplicates else False
        return frame


# --- Great Expectations ------------------------------------------------------------------------


def _run_suites(frames: dict[str, Any], contracts_dir: Path) -> dict[int, tuple[str, str]]:
    """Run each format's suite over its frame; row_id -> (reason, detail) of the first failed expectation."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("llm_trainer_rows")
    failures: dict[int, tuple[str, str]] = {}
    for name, frame in frames.items():
        doc = load_suite_document(name, contracts_dir)
        # The suite's order is the reasons' priority: a row failing several gets the first reason.
        expectations = [{**e, "meta": {**e["meta"], "order": i}} for i, e in enumerate(doc["expectations"])]
        suite = gx.ExpectationSuite(name=doc["name"], expectations=expectations, meta=doc.get("meta", {}))
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": frame}
        )
        result = batch.validate(suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["row_id"]})
        for outcome in sorted(result.results, key=lambda r: r.expectation_config.meta["order"]):
            config = outcome.expectation_config
            raised = _raised(outcome.exception_info)
            if raised:
                raise ContractError(f"data_contracts/{name}.json: {config.type} on {config.kwargs.get('column')} failed to run: {raised}")
            if outcome.success:
                continue
            hits = outcome.result.get("unexpected_index_list")
            if not hits:
                raise ContractError(f"data_contracts/{name}.json: {config.type} failed without naming rows; use per-row expectations")
            for hit in hits:
                failures.setdefault(int(hit["row_id"]), (config.meta["reason"], config.meta.get("detail", "")))
    return failures


def _raised(info: Any) -> str | None:
    """The exception message in a GX result's exception_info (flat, or keyed by metric)."""
    if not info:
        return None
    if isinstance(info, dict) and "raised_exception" in info:
        return info.get("exception_message") or "error" if info["raised_exception"] else None
    if isinstance(info, dict):
        for value in info.values():
            message = _raised(getattr(value, "to_json_dict", lambda: value)() if not isinstance(value, dict) else value)
            if message:
                return message
    return None


# --- The whole folder --------------------------------------------------------------------------


def fingerprint_files(files: list[Path], root: Path | None = None) -> str:
    """Dataset fingerprint of `files` named relative to `root` (see trainer.data.dataset_fingerprint)."""
    digests = {}
    for path in files:
        name = display_name(path, root) if root is not None else path.name
        digests[name] = file_digest(read_file_bytes(path))
    return dataset_fingerprint(digests)


def _discover(data_path: Path) -> tuple[list[Path], list[Path], Path]:
    if not data_path.exists():
        what = "is a broken link" if data_path.is_symlink() else "does not exist"
        raise DataUnusableError(f"{data_path}: {what}; point training_data_path at a folder of *.jsonl / *.csv files")
    files, other = discover(data_path)
    root = data_path if data_path.is_dir() else data_path.parent
    if not files:
        if not data_path.is_dir():
            raise DataUnusableError(f"{data_path}: not a *.jsonl or *.csv file")
        ignored = f" (ignored: {', '.join(display_name(p, root) for p in other[:5])}{', ...' if len(other) > 5 else ''})" if other else ""
        raise DataUnusableError(f"{data_path}: no *.jsonl or *.csv files found (subfolders included){ignored}")
    return files, other, root


def _read(path: Path, display: str, data_path: Path) -> bytes:
    try:
        return read_file_bytes(path)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if not os.path.exists(path):
            why = "a broken link" if os.path.islink(path) else "it disappeared while reading"
        raise DataUnusableError(f"{display}: unreadable ({why}); fix its permissions or remove it from {data_path}") from None


def fingerprint_path(data_path: Path) -> str:
    """The fingerprint validate_dataset would record, without validating (for cache keys)."""
    data_path = Path(data_path)
    files, _, root = _discover(data_path)
    return dataset_fingerprint({display_name(p, root): file_digest(_read(p, display_name(p, root), data_path)) for p in files})


def count_tokens(tokenizer, examples: list[Example]) -> list[int]:
    """Tokens per example, counted exactly as training tokenizes them (trainer.tokens)."""
    from trainer.tokens import tokenize_example

    return [len(tokenize_example(tokenizer, example).input_ids) for example in examples]


def validate_dataset(
    data_path: Path,
    report_dir: Path | None = None,
    dataset_format: str | None = None,
    *,
    column_mapping: Mapping[str, str] | None = None,
    tokenizer: Any = None,
    max_seq_length: int | None = None,
    overlong_rows: str = "warn",
    contracts_dir: Path = CONTRACTS_DIR,
) -> tuple[ValidationReport, list[Example]]:
    """Validate every row under `data_path`; write the report and quarantine file to `report_dir`.

    With a `tokenizer` and `max_seq_length`, valid rows are also tokenized as training will and
    those over the limit are reported (`overlong_rows="warn"`: they stay valid and the trainer
    leaves them out) or quarantined as `too_many_tokens` (`"quarantine"`).
    Raises DataUnusableError when there is nothing to validate or the folder mixes training formats.
    """
    data_path = Path(data_path)
    if dataset_format is not None and dataset_format not in FORMATS:
        raise DataUnusableError(f"format {dataset_format!r}: unknown; choose one of {', '.join(FORMATS)}")
    if overlong_rows not in OVERLONG_POLICIES:
        raise ValueError(f"overlong_rows: {overlong_rows!r}; choose one of {', '.join(OVERLONG_POLICIES)}")
    mapping = dict(column_mapping or {})
    files, other, root = _discover(data_path)

    # 1. Read: every file once; its bytes give both the rows and the fingerprint.
    rows: list[Row] = []
    file_reports: dict[str, FileReport] = {}
    file_rows: dict[str, tuple[int, int]] = {}  # display -> [start, end) into rows
    digests: dict[str, str] = {}
    for path in files:
        display = display_name(path, root)
        data = _read(path, display, data_path)
        digests[display] = file_digest(data)
        start = len(rows)
        rows.extend(parse_rows(path, data, display, mapping))
        file_rows[display] = (start, len(rows))
        file_reports[display] = FileReport(path=display, format=None, size_bytes=len(data), sha256=digests[display])

    # 2. Code checks: each file's format, then each row's shape into its suite's frame.
    outcome: list[tuple[str, str] | None] = [None] * len(rows)
    row_format: list[str | None] = [None] * len(rows)
    frames: dict[str, _Frame] = {}
    for display, (start, end) in file_rows.items():
        detected = [detect_format(r.record) if r.record is not None else None for r in rows[start:end]]
        fmt = dataset_format or decide_file_format(detected)
        file_reports[display].format = fmt
        for i, row_fmt in enumerate(detected, start):
            row = rows[i]
            if row.error is not None:
                reason, _, detail = row.error.partition(": ")
                outcome[i] = (reason, detail)
            elif row_fmt is None:
                outcome[i] = ("unknown_format", _unknown_format_detail(row.record, fmt))
            elif row_fmt != fmt:
                why = f"dataset_format is {fmt}" if dataset_format else f"the file is {fmt} (most of its rows)"
                outcome[i] = ("wrong_format", f"a {row_fmt} row, but {why}; keep one format per file")
            else:
                suite = SUITE_FOR_FORMAT[fmt]
                frame = frames.get(suite) or frames.setdefault(suite, _Frame(suite))
                try:
                    frame.add(i, row.record, fmt)
                except _RowProblem as problem:
                    outcome[i] = (problem.reason, problem.detail)
                    continue
                row_format[i] = fmt
    _check_one_training_format(file_reports, data_path)

    # Exact duplicates, over the whole folder, among rows that reached a frame (the first copy stays).
    first_copy: dict[str, int] = {}
    duplicates: dict[int, int] = {}  # row -> the row it repeats
    for i, fmt in enumerate(row_format):
        if fmt is not None:
            first = first_copy.setdefault(rows[i].key, i)
            if first != i:
                duplicates[i] = first

    # 3. Great Expectations, one suite per format, on the typed frames.
    suites = sorted(frames)
    if frames:
        failures = _run_suites({name: f.frame(set(duplicates)) for name, f in frames.items()}, contracts_dir)
        for row_id, (reason, detail) in failures.items():
            outcome[row_id] = (reason, _explain(rows, row_id, row_format[row_id], reason, detail, duplicates))

    # 4. Valid rows become examples; with a tokenizer, their token counts are checked too.
    examples: dict[int, Example] = {}
    for i, row in enumerate(rows):
        if outcome[i] is None:
            fmt = row_format[i]
            if fmt == "text":
                examples[i] = Example(row.key, row.file, row.line, text=row.record["text"])
            else:
                examples[i] = Example(row.key, row.file, row.line, messages=to_messages(row.record, fmt))
    overlong: list[OverlongRow] = []
    max_tokens = None
    if tokenizer is not None and max_seq_length and examples:
        counts = count_tokens(tokenizer, list(examples.values()))
        max_tokens = max(counts)
        for (i, example), tokens in zip(list(examples.items()), counts):
            if tokens > max_seq_length:
                overlong.append(OverlongRow(example.file, example.line, tokens))
                if overlong_rows == "quarantine":
                    outcome[i] = ("too_many_tokens", f"{tokens} tokens > max_seq_length {max_seq_length}; shorten or split the row, or raise max_seq_length")
                    del examples[i]

    # 5. The report: per file, per reason, every quarantined row with its raw bytes.
    quarantined: list[QuarantinedRow] = []
    for display, (start, end) in file_rows.items():
        report = file_reports[display]
        report.rows_total = end - start
        for i in range(start, end):
            if outcome[i] is None:
                report.rows_valid += 1
                continue
            reason, detail = outcome[i]
            report.rows_quarantined += 1
            report.top_reasons[reason] = report.top_reasons.get(reason, 0) + 1
            quarantined.append(_quarantine(rows[i], reason, detail))
        report.top_reasons = dict(sorted(report.top_reasons.items(), key=lambda kv: (-kv[1], kv[0])))

    formats = sorted({r.format for r in file_reports.values() if r.format and r.rows_total})
    report = ValidationReport(
        data_path=str(data_path),
        format=formats[0] if len(formats) == 1 else ("+".join(formats) or None),
        contract_version=contract_version(suites, contracts_dir) if suites else "none",
        rows_total=len(rows),
        rows_valid=len(examples),
        rows_quarantined=len(quarantined),
        fingerprint=dataset_fingerprint(digests),
        files=list(file_reports.values()),
        quarantined=quarantined,
        trains_as=TRAINS_AS[formats[0]] if formats else None,
        dataset_format=dataset_format,
        column_mapping=mapping,
        reasons=dict(Counter(q.reason for q in quarantined).most_common()),
        ignored_files=[display_name(p, root) for p in other],
        max_seq_length=max_seq_length if tokenizer is not None else None,
        overlong_rows=overlong_rows,
        tokenizer=getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
        max_tokens=max_tokens,
        rows_overlong=len(overlong),
        overlong=overlong,
    )
    if report.rows_total != report.rows_valid + report.rows_quarantined:  # pragma: no cover - the invariant
        raise RuntimeError(f"row accounting broke: {report.rows_total} != {report.rows_valid} + {report.rows_quarantined}")
    if report_dir is not None:
        write_report(report, Path(report_dir))
    return report, list(examples.values())


def _explain(rows: list[Row], i: int, fmt: str, reason: str, detail: str, duplicates: dict[int, int]) -> str:
    """Sharpen a suite's generic detail for one failing row: which turn, which roles, which first copy."""
    if reason == "duplicate_row":
        first = rows[duplicates[i]] if i in duplicates else None
        return f"exact duplicate of {first.file}:{first.line} (the first copy is kept)" if first else detail
    if fmt not in ("chat", "sharegpt") or reason not in ("unknown_role", "no_assistant_turn", "bad_turn_order", "blank_content"):
        return detail
    list_key, role_key, content_key = ("messages", "role", "content") if fmt == "chat" else ("conversations", "from", "value")
    turns = rows[i].record[list_key]
    if reason == "blank_content":
        blank = next(n for n, t in enumerate(turns) if not t[content_key].strip())
        return f"{list_key}[{blank}].{content_key} is empty or whitespace only"
    roles = [t[role_key] for t in turns]
    if reason == "unknown_role":
        allowed = ("system", "user", "assistant") if fmt == "chat" else tuple(SHAREGPT_ROLES)
        bad = next(n for n, r in enumerate(roles) if r not in allowed)
        return f"{list_key}[{bad}].{role_key} is {roles[bad]!r}; use one of {', '.join(allowed)}"
    return f"roles are {', '.join(roles)}: {detail}"


def _unknown_format_detail(record: dict[str, Any], file_format: str | None) -> str:
    found = ", ".join(sorted(record)[:8]) or "no fields"
    expected = f"this file is {file_format}: expected {' / '.join(FORMAT_FIELDS[file_format])}" if file_format else (
        "expected messages, conversations, instruction + output, prompt + completion or text"
    )
    return f"none of the fields of a known format (found: {found}); {expected}, or rename fields with column_mapping"


def _check_one_training_format(file_reports: dict[str, FileReport], data_path: Path) -> None:
    """A folder may mix formats only when they all become the same training text (chat or text)."""
    first_file: dict[str, FileReport] = {}
    for report in file_reports.values():
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
        quarantine_path = Path(report_dir) / "quarantine.jsonl" if report_dir is not None else report_path.with_suffix(".quarantine.jsonl")
    report.report_path, report.quarantine_path = str(report_path), str(quarantine_path)
    _write_atomic(Path(quarantine_path), "".join(json.dumps(asdict(q), ensure_ascii=False) + "\n" for q in report.quarantined))
    _write_atomic(Path(report_path), json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")


def check_gates(report: ValidationReport, min_valid_rows: int, max_invalid_fraction: float) -> None:
    """Stop before any model is loaded when the data is not good enough to train on."""
    where = f"; see {report.report_path}" if report.report_path else ""
    if report.rows_total == 0:
        raise DataGateError(f"training_data_path: the {len(report.files)} data file(s) hold no rows (empty, or blank lines only){where}")
    if report.invalid_fraction > max_invalid_fraction:
        shown = 3
        first = "; ".join(f"{q.file}:{q.line} {q.reason}" for q in report.quarantined[:shown])
        more = f" (+{report.rows_quarantined - shown} more)" if report.rows_quarantined > shown else ""
        raise DataGateError(
            f"training_data_path: {report.rows_quarantined} of {report.rows_total} rows quarantined "
            f"({report.invalid_fraction:.1%} > max_invalid_fraction {max_invalid_fraction:.1%}): {first}{more}{where}"
        )
    if report.rows_trainable < min_valid_rows:
        overlong = f", {report.rows_overlong} of them over max_seq_length" if report.rows_trainable != report.rows_valid else ""
        raise DataGateError(
            f"training_data_path: only {report.rows_trainable} rows to train on ({report.rows_valid} valid{overlong}; "
            f"min_valid_rows is {min_valid_rows}){where}"
        )
