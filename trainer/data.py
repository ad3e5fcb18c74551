"""Reading training files and turning every supported format into chat messages.

A *row* is one non-blank JSONL line or one non-blank CSV record, with its file (the path relative
to the data folder), its 1-based physical line number (for CSV, the line where the record starts;
lines are counted by `\\n`, so CRLF files number the same) and its raw bytes, so a quarantined row
can always be traced back and restored. Reading never modifies the input files.

Formats: chat `messages`, ShareGPT `conversations`, instruction (`instruction`, optional `input`,
`output`), `prompt`/`completion`, and plain `text`. A row's format is the one whose fields it has
most of; a *file's* format is the one most of its parseable rows have (ties: the one seen first),
or `dataset_format` when forced. All but `text` become a list of `{"role", "content"}` messages;
`text` rows train on the whole text. `column_mapping` renames top-level fields / CSV columns
before detection (e.g. `question -> prompt`).

See docs/data-contracts.md for the whole contract.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

try:  # a dependency of prefect, so present in every install; json is the fallback and the judge
    import orjson
except ImportError:  # pragma: no cover
    orjson = None

DATA_SUFFIXES = (".jsonl", ".csv")
FORMATS = ("chat", "sharegpt", "instruction", "prompt_completion", "text")
# The top-level fields that mark each format (a row has the format it has most fields of).
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "sharegpt": ("conversations",),
    "instruction": ("instruction", "input", "output"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}
KNOWN_FIELDS = tuple(dict.fromkeys(name for names in FORMAT_FIELDS.values() for name in names))
# CSV cells of these columns hold a JSON list (a chat or ShareGPT conversation in a spreadsheet).
JSON_CELL_FIELDS = ("messages", "conversations")
# The training text a format becomes: sharegpt/instruction/prompt_completion all become chat.
TRAINS_AS = {"chat": "chat", "sharegpt": "chat", "instruction": "chat", "prompt_completion": "chat", "text": "text"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
UTF8_BOM = b"\xef\xbb\xbf"

# The row key is the sha256 of this canonical JSON. It is also what the held-out split hashes, so
# it must not change between versions (changing it would move rows between train and eval).
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
# orjson reads integers beyond 64 bits as floats; a run of 20 digits sends a line to json instead.
# (bytes.translate + `in` is ten times faster than a regex search here.)
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x61 for b in range(256))
_TWENTY_DIGITS = b"0" * 20


@dataclass(eq=False)
class Row:
    file: str
    line: int
    raw: bytes
    record: dict[str, Any] | None = None
    error: str | None = None  # "reason: detail" from the contract vocabulary when the row can't be parsed

    @cached_property
    def key(self) -> str:
        """Content hash of the parsed record: exact duplicates share it, and the eval split uses it."""
        payload = _CANONICAL.encode(self.record) if self.record is not None else self.raw.decode("utf-8", "replace")
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    @property
    def reason(self) -> str | None:
        return self.error.partition(":")[0] if self.error else None


# --- Finding the files ---------------------------------------------------------------------------


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def discover(root: Path) -> tuple[list[Path], list[Path]]:
    """(data files, other files) under `root`, subfolders included, each sorted by relative path.

    Hidden files and folders (`.git`, `.DS_Store`, editor swap files) are skipped silently. Every
    non-folder entry with a data suffix counts as a data file, including broken links and FIFOs,
    so that reading it fails loudly instead of the file being skipped without a word.
    """
    root = Path(root)
    if not root.is_dir():
        return ([root], []) if root.suffix.lower() in DATA_SUFFIXES else ([], [root])
    data, other = [], []
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a link loop: walk each real folder once
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = Path(dirpath) / name
            if _hidden(path.relative_to(root)):
                continue
            (data if path.suffix.lower() in DATA_SUFFIXES else other).append(path)
    return sorted(data, key=lambda p: display_name(p, root)), sorted(other, key=lambda p: display_name(p, root))


def discover_files(root: Path) -> list[Path]:
    """Data files under `root` (subfolders included), sorted by relative path. Other files are ignored."""
    return discover(root)[0]


def display_name(path: Path, root: Path) -> str:
    """How reports name a file: its path relative to the data folder, with `/` separators."""
    if root.is_dir() and path != root:
        return path.relative_to(root).as_posix()
    return path.name


def read_file_bytes(path: Path) -> bytes:
    """A data file's bytes. OSError when it can't be read; FIFOs, sockets and devices are refused
    without opening them (reading a FIFO would block forever)."""
    mode = os.stat(path).st_mode  # follows links: a broken link raises FileNotFoundError here
    if not stat.S_ISREG(mode):
        raise OSError(f"not a regular file ({_file_kind(mode)})")
    return Path(path).read_bytes()


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dataset_fingerprint(digests: Mapping[str, str]) -> str:
    """sha256 over (relative path, sha256 of bytes) of every data file, sorted by path: the same
    files give the same fingerprint whatever order they were found in; a rename or an edit changes it."""
    digest = hashlib.sha256()
    for name in sorted(digests):
        digest.update(name.encode("utf-8") + b"\0" + digests[name].encode("ascii") + b"\n")
    return digest.hexdigest()


# --- Parsing rows --------------------------------------------------------------------------------


def apply_column_mapping(record: dict[str, Any], mapping: Mapping[str, str] | None) -> dict[str, Any]:
    """Rename top-level fields (`question -> prompt`); a renamed field replaces one already named so."""
    if not mapping or not any(name in record for name in mapping):
        return record
    renamed = {mapping[k]: v for k, v in record.items() if k in mapping}
    return {**{k: v for k, v in record.items() if k not in mapping and k not in renamed}, **renamed}


def _parse_json_slow(body: bytes) -> tuple[Any, str | None]:
    """The judge for lines the fast parser refused: (value, None) or (None, "reason: detail")."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid_utf8: byte {exc.start + 1} of the line (0x{body[exc.start]:02x}) is not UTF-8; re-save the file as UTF-8"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid_json: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return None, "invalid_json: nested too deeply"
    try:  # json accepts \\ud800-style escapes that encode no character
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return None, "invalid_utf8: a \\u escape encodes a lone surrogate, which is not text"
    return value, None


def _has_long_digit_run(data: bytes) -> bool:
    return _TWENTY_DIGITS in data.translate(_DIGITS_AS_ZERO)


def parse_json_line(body: bytes, fast: bool | None = None) -> tuple[Any, str | None]:
    """Parse one JSON value. orjson first (3-4x faster); on refusal, the standard library decides,
    so what is accepted is exactly what `json.loads` accepts, minus lone surrogates. orjson reads
    integers beyond 64 bits as floats (two long ids could then look equal), so text with a run of
    20+ digits goes to the standard library too (`fast`: the caller already checked)."""
    if fast is None:
        fast = not _has_long_digit_run(body)
    if orjson is not None and fast:
        try:
            return orjson.loads(body), None
        except orjson.JSONDecodeError:
            pass
    return _parse_json_slow(body)


def parse_jsonl(data: bytes, display: str, column_mapping: Mapping[str, str] | None = None) -> list[Row]:
    rows: list[Row] = []
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the final newline ends the last line; it starts no new one
    fast = None if _has_long_digit_run(data) else True  # one pass over the file instead of one per line
    for number, raw in enumerate(lines, start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        body = raw[3:] if number == 1 and raw.startswith(UTF8_BOM) else raw  # a BOM is not data
        if not body or body.isspace():
            continue  # blank lines separate nothing and hold no row
        value, error = parse_json_line(body, fast)
        if error is not None:
            rows.append(Row(display, number, raw, error=error))
        elif not isinstance(value, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
            rows.append(Row(display, number, raw, error=f"not_an_object: the line is {kind}; each line must be one JSON object"))
        else:
            rows.append(Row(display, number, raw, record=apply_column_mapping(value, column_mapping)))
    _hint_csv_in_jsonl(rows, lines)
    return rows


def _hint_csv_in_jsonl(rows: list[Row], lines: list[bytes]) -> None:
    """A .jsonl file whose every row fails to parse and whose first line reads as a CSV header."""
    if not rows or any(r.reason != "invalid_json" for r in rows):
        return
    first = lines[0].removeprefix(UTF8_BOM).decode("utf-8", "replace").strip()
    if "," in first and any(name.strip().strip('"') in KNOWN_FIELDS for name in first.split(",")):
        for row in rows:
            row.error += "; the file looks like CSV: rename it to .csv"


def _csv_lines(text: str) -> list[str]:
    """Physical lines (split on \\n only), each keeping its line ending, for csv.reader."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _csv_raw(lines: list[str], start: int, end: int, bom: bool) -> bytes:
    text = "".join(lines[start - 1 : end])
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    raw = text.encode("utf-8", "surrogateescape")  # the original bytes, invalid UTF-8 included
    return UTF8_BOM + raw if bom and start == 1 else raw


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _iter_csv(lines: list[str]) -> Iterator[tuple[int, int, list[str] | None, str | None]]:
    """(start line, end line, values or None, csv error) per record, blank records included."""
    reader = csv.reader(iter(lines), strict=True)  # strict: an unclosed quote is an error, not the rest of the file
    start = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, reader.line_num, None, str(exc)
        else:
            yield start, reader.line_num, values, None
        start = reader.line_num + 1


def parse_csv(data: bytes, display: str, column_mapping: Mapping[str, str] | None = None) -> list[Row]:
    """One row per CSV record, mapped onto the formats by the header's column names.

    Each record is checked on its own: a record with bytes that are not UTF-8 is quarantined as
    `invalid_utf8` (raw bytes kept), the rest of the file still counts. A file whose first line
    names no known column has no header: all its records, the first line included, are
    `missing_header`.
    """
    bom = data.startswith(UTF8_BOM)
    text = data[3:].decode("utf-8", "surrogateescape") if bom else data.decode("utf-8", "surrogateescape")
    lines = _csv_lines(text)
    limit = csv.field_size_limit(1 << 30)  # the default, 131,072 characters, is below the contract's own bound
    try:
        records = list(_iter_csv(lines))
    finally:
        csv.field_size_limit(limit)
    rows: list[Row] = []
    header: list[str] | None = None
    for start, end, values, csv_error in records:
        if values is not None and not any(v.strip() for v in values):
            continue  # blank lines hold no row
        raw = _csv_raw(lines, start, end, bom)
        if header is None:  # the first non-blank record
            names = [] if values is None else [(column_mapping or {}).get(h.strip(), h.strip()) for h in values]
            if any(name in KNOWN_FIELDS for name in names):
                header = names
                continue
            hint = "the first line looks like JSON Lines: rename the file to .jsonl" if raw.lstrip().startswith(b"{") else (
                f"its first line names no known column ({', '.join(KNOWN_FIELDS)}); add a header row or set column_mapping"
            )
            return [Row(display, s, _csv_raw(lines, s, e, bom), error=f"missing_header: {hint}")
                    for s, e, v, err in records if v is None or any(x.strip() for x in v)]
        if csv_error is not None:
            if "unexpected end of data" in csv_error:
                csv_error = "a quoted field is never closed; the record runs to the end of the file"
            rows.append(Row(display, start, raw, error=f"invalid_csv: {csv_error}"))
        elif not _is_utf8(raw):
            bad = raw.decode("utf-8", "replace")
            rows.append(Row(display, start, raw, error=f"invalid_utf8: the record has bytes that are not UTF-8 (shown as {bad.count(chr(0xFFFD))} x U+FFFD); re-save the file as UTF-8"))
        elif len(values) != len(header):
            rows.append(Row(display, start, raw, error=f"ragged_row: {len(values)} values for {len(header)} columns"))
        else:
            record, error = _csv_record(header, values)
            rows.append(Row(display, start, raw, record=record, error=error))
    return rows


def _csv_record(header: list[str], values: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    record: dict[str, Any] = dict(zip(header, values))
    for name in JSON_CELL_FIELDS:
        cell = record.get(name)
        if cell is None:
            continue
        if not cell.strip():
            record[name] = None  # an empty cell is a missing value
            continue
        value, error = parse_json_line(cell.encode("utf-8"))
        if error is not None:
            reason, _, detail = error.partition(": ")
            return None, f"{reason}: column '{name}': {detail}"
        record[name] = value
    return record, None


def read_rows(path: Path, root: Path, column_mapping: Mapping[str, str] | None = None) -> list[Row]:
    """All rows of one data file (OSError when it can't be read)."""
    display = display_name(path, root)
    data = read_file_bytes(path)
    return parse_rows(path, data, display, column_mapping)


def parse_rows(path: Path, data: bytes, display: str, column_mapping: Mapping[str, str] | None = None) -> list[Row]:
    parse = parse_csv if path.suffix.lower() == ".csv" else parse_jsonl
    return parse(data, display, column_mapping)


# --- Formats -------------------------------------------------------------------------------------


_FORMAT_OF_FIELD = {name: fmt for fmt in reversed(FORMATS) for name in FORMAT_FIELDS[fmt]}


def detect_format(record: dict[str, Any]) -> str | None:
    """The format whose marker fields the row has most of (ties: the earlier in FORMATS); None if none."""
    if len(record) == 1:  # the common case, e.g. {"messages": [...]}: one field, one answer
        return _FORMAT_OF_FIELD.get(next(iter(record)))
    best, hits = None, 0
    for fmt in FORMATS:
        count = sum(1 for name in FORMAT_FIELDS[fmt] if name in record)
        if count > hits:
            best, hits = fmt, count
    return best


def decide_file_format(row_formats: Iterable[str | None]) -> str | None:
    """A file's format: the one most of its parseable rows have (ties: the one seen first)."""
    counts = Counter(f for f in row_formats if f is not None)
    return counts.most_common(1)[0][0] if counts else None


def to_messages(record: dict[str, Any], fmt: str) -> list[dict[str, str]]:
    """Chat messages of a row that passed its contract (types already checked)."""
    if fmt == "chat":  # turns holding only role and content are used as they are, not copied
        return [m if len(m) == 2 else {"role": m["role"], "content": m["content"]} for m in record["messages"]]
    if fmt == "sharegpt":
        return [{"role": SHAREGPT_ROLES[m["from"]], "content": m["value"]} for m in record["conversations"]]
    if fmt == "instruction":
        prompt = record["instruction"]
        if record.get("input"):
            prompt = f"{prompt}\n\n{record['input']}"
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    if fmt == "prompt_completion":
        return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}]
    raise ValueError(f"format {fmt!r} has no chat messages")


@dataclass(frozen=True)
class Example:
    """One valid row, ready to tokenize: chat messages, or plain text for the `text` format."""

    key: str
    file: str
    line: int
    messages: list[dict[str, str]] | None = None
    text: str | None = None


def split_examples(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Held-out split by a seeded hash of each row's content.

    A row's side depends only on its own content and the seed, so adding rows elsewhere never moves
    an existing row between train and eval (which a shuffled index split would).
    """
    if eval_fraction <= 0:
        return list(examples), []
    train, held_out = [], []
    for example in examples:
        bucket = int(hashlib.sha256(f"{seed}:{example.key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (held_out if bucket < eval_fraction else train).append(example)
    if not held_out and len(train) > 1:  # tiny data sets still get one eval row
        held_out.append(train.pop())
    return train, held_out
