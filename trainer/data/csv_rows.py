"""CSV records as rows: one row per record, mapped onto the formats by the header's column names.

A record keeps the physical line where it starts (lines counted by `\n`) and its raw bytes, so a
quarantined record can be traced back and restored.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from typing import Any

try:  # a dependency of prefect, so present in every install; json is the fallback and the judge
    import orjson
except ImportError:  # pragma: no cover
    orjson = None
from trainer.data.formats import JSON_CELL_FIELDS, KNOWN_FIELDS
from trainer.data.rows import UTF8_BOM, Row, parse_json_line


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
            if any(name in KNOWN_FIELDS for name in names) and not _is_utf8(raw):
                # Column names are keys of every record: bytes that are not text can't be one.
                return [
                    Row(display, s, _csv_raw(lines, s, e, bom), error=(
                        f"invalid_utf8: the header (line {start}) has bytes that are not UTF-8, so no record can be "
                        "read by its column names; re-save the file as UTF-8"
                    ))
                    for s, e, v, err in records
                    if v is None or any(x.strip() for x in v)
                ]  # fmt: skip
            if any(name in KNOWN_FIELDS for name in names):
                header = names
                continue
            hint = (
                "the first line looks like JSON Lines: rename the file to .jsonl"
                if raw.lstrip().startswith(b"{")
                else (
                    f"its first line names no known column ({', '.join(KNOWN_FIELDS)}); add a header row or set "
                    "column_mapping"
                )
            )
            return [
                Row(display, s, _csv_raw(lines, s, e, bom), error=f"missing_header: {hint}")
                for s, e, v, err in records
                if v is None or any(x.strip() for x in v)
            ]
        if csv_error is not None:
            if "unexpected end of data" in csv_error:
                csv_error = "a quoted field is never closed; the record runs to the end of the file"
            rows.append(Row(display, start, raw, error=f"invalid_csv: {csv_error}"))
        elif not _is_utf8(raw):
            bad = raw.decode("utf-8", "replace")
            rows.append(
                Row(
                    display,
                    start,
                    raw,
                    error=f"invalid_utf8: the record has bytes that are not UTF-8 (shown as {bad.count(chr(0xFFFD))} "
                    "x U+FFFD); re-save the file as UTF-8",
                )
            )
        elif len(values) != len(header):
            rows.append(Row(display, start, raw, error=f"ragged_row: {len(values)} values for {len(header)} columns"))
        else:
            record, error = _csv_record(header, values)
            rows.append(Row(display, start, raw, record=record, error=error))
    return rows


def _csv_record(header: list[str], values: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    record: dict[str, Any] = dict(zip(header, values, strict=True))
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
