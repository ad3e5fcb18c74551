"""Reading training files and turning every supported format into chat messages.

A *row* is one JSONL line or one CSV record, with its file and 1-based physical line number (for
CSV, the line where the record starts) and its raw bytes, so a quarantined row can always be traced
back and restored. Reading never modifies the input files.

Formats (detected per row, or forced): chat `messages`, ShareGPT `conversations`, instruction
(`instruction`, optional `input`, `output`), `prompt`/`completion`, and plain `text`. All but `text`
become a list of `{"role", "content"}` messages; `text` rows train on the whole text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_SUFFIXES = (".jsonl", ".csv")
FORMATS = ("chat", "sharegpt", "instruction", "prompt_completion", "text")
# The training text a format becomes: sharegpt/instruction/prompt_completion all become chat.
TRAINS_AS = {"chat": "chat", "sharegpt": "chat", "instruction": "chat", "prompt_completion": "chat", "text": "text"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


@dataclass
class Row:
    file: str
    line: int
    raw: bytes
    record: dict[str, Any] | None = None
    error: str | None = None  # a reason from the contract vocabulary when the row can't be parsed
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Content hash of the parsed record: duplicates share it, and the eval split uses it."""
        payload = json.dumps(self.record, sort_keys=True, ensure_ascii=False) if self.record is not None else self.raw.decode("utf-8", "replace")
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def discover_files(root: Path) -> list[Path]:
    """Data files under `root` (subfolders included), in a stable order. Other files are ignored."""
    if root.is_file():
        return [root] if root.suffix.lower() in DATA_SUFFIXES else []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES and not p.name.startswith("."))


def _decode(raw: bytes, first: bool) -> str:
    text = raw.decode("utf-8")
    if first:
        text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not part of the data
    return text


def read_jsonl(path: Path, display: str) -> Iterator[Row]:
    with path.open("rb") as fh:
        for number, raw_line in enumerate(fh, start=1):
            raw = raw_line.rstrip(b"\r\n")
            try:
                text = _decode(raw, number == 1)
            except UnicodeDecodeError as exc:
                yield Row(display, number, raw, error=f"invalid_utf8: byte {exc.start}")
                continue
            if not text.strip():
                continue  # blank lines separate nothing and hold no row
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Row(display, number, raw, error=f"invalid_json: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(record, dict):
                yield Row(display, number, raw, error=f"not_an_object: a JSON {type(record).__name__}, expected an object")
                continue
            yield Row(display, number, raw, record=record)


def read_csv(path: Path, display: str) -> Iterator[Row]:
    data = path.read_bytes()
    try:
        text = _decode(data, True)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        yield Row(display, line, data, error=f"invalid_utf8: the file is not UTF-8 (first bad byte on line {line})")
        return
    raw_lines = text.splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [h.strip() for h in header]
    start = reader.line_num + 1
    for values in reader:
        end = reader.line_num
        raw = "".join(raw_lines[start - 1 : end]).rstrip("\r\n").encode("utf-8")
        if not any(v.strip() for v in values):
            start = end + 1
            continue
        if len(values) != len(header):
            yield Row(display, start, raw, error=f"ragged_row: {len(values)} values for {len(header)} columns")
        else:
            yield Row(display, start, raw, record=dict(zip(header, values)))
        start = end + 1


def read_rows(path: Path, root: Path) -> Iterator[Row]:
    display = str(path.relative_to(root)) if path != root and root.is_dir() else path.name
    reader = read_csv if path.suffix.lower() == ".csv" else read_jsonl
    yield from reader(path, display)


def detect_format(record: dict[str, Any]) -> str | None:
    if "messages" in record:
        return "chat"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record or ("output" in record and "input" in record):
        return "instruction"
    if "prompt" in record or "completion" in record:
        return "prompt_completion"
    if "text" in record:
        return "text"
    return None


def to_messages(record: dict[str, Any], fmt: str) -> list[dict[str, str]]:
    """Chat messages of a row that passed its contract (types already checked)."""
    if fmt == "chat":
        return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
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
