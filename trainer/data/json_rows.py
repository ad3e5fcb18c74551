"""Rows of a `.json` file: a JSON array of records (the usual LLaMA-Factory / Alpaca / axolotl /
FastChat file), JSON Lines saved as .json, or one record.

Each record of an array keeps the line where it starts and its exact bytes, so a quarantined record
can be found and restored like a JSON Lines row. A syntax error inside an array leaves the rest of
the file unsplittable: the records before it are rows, and the rest is one `invalid_json` row
holding every remaining byte (nothing is lost or silently dropped).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from trainer.data.formats import detect_format
from trainer.data.rows import UTF8_BOM, Row, apply_column_mapping, parse_json_line, parse_jsonl

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_DECODER = json.JSONDecoder()


class NotRecords(ValueError):
    """A .json file that holds no records (e.g. LLaMA-Factory's dataset_info.json): not read, with a warning."""


def parse_json_file(data: bytes, display: str, column_mapping: Mapping[str, str] | None = None) -> list[Row]:
    body = data[3:] if data.startswith(UTF8_BOM) else data
    first = body.lstrip()[:1]
    if first == b"[":
        return _parse_array(data, display, column_mapping)
    rows = parse_jsonl(data, display, column_mapping)
    if first == b"{" and rows and all(r.error is not None for r in rows):  # one record, pretty-printed?
        value, error = parse_json_line(body)
        if error is None and isinstance(value, dict):
            if detect_format(value) is None:
                found = ", ".join(sorted(value)[:6])
                raise NotRecords(f"one JSON object with none of the fields of a format (found: {found}), not records")
            return [Row(display, 1 + data[: len(data) - len(body.lstrip())].count(b"\n"), body.strip(), record=value)]
    return rows


def _parse_array(data: bytes, display: str, column_mapping: Mapping[str, str] | None) -> list[Row]:
    strict = True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # keep going: only the records holding the bad bytes are quarantined
        text, strict = data.decode("utf-8", "surrogateescape"), False
    if text.startswith("\ufeff"):
        text = " " + text[1:]  # a BOM is not data; a space keeps every offset where it was
    rows: list[Row] = []
    pos = _WHITESPACE.match(text, 0).end() + 1  # past the `[`
    line, counted = 1, 0
    while True:
        pos = _WHITESPACE.match(text, pos).end()
        line += text.count("\n", counted, pos)
        counted = pos
        if text.startswith("]", pos) and not rows:
            return _after_array(text, pos + 1, line, display, rows)
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            rows.append(
                _rest(
                    text, pos, line, f"{exc.msg.removesuffix(' at')} at line {exc.lineno} column {exc.colno}", display
                )
            )
            return rows
        except RecursionError:
            rows.append(_rest(text, pos, line, "nested too deeply", display))
            return rows
        except ValueError as exc:  # an integer of more than 4,300 digits: Python's bound on int(text)
            rows.append(_rest(text, pos, line, str(exc).splitlines()[0], display))
            return rows
        rows.append(_record(text[pos:end], value, display, line, strict, column_mapping))
        pos = _WHITESPACE.match(text, end).end()
        if text.startswith(",", pos):
            pos += 1
        elif text.startswith("]", pos):
            line += text.count("\n", counted, pos)
            return _after_array(text, pos + 1, line, display, rows)
        else:
            line += text.count("\n", counted, pos)
            rows.append(_rest(text, pos, line, "expected ',' or ']' after a record", display))
            return rows


def _after_array(text: str, pos: int, line: int, display: str, rows: list[Row]) -> list[Row]:
    end = _WHITESPACE.match(text, pos).end()
    if end < len(text):
        rows.append(_rest(text, end, line + text.count("\n", pos, end), "extra data after the array", display))
    return rows


def _rest(text: str, pos: int, line: int, why: str, display: str) -> Row:
    raw = text[pos:].rstrip("\r\n").encode("utf-8", "surrogateescape")
    return Row(
        display,
        line,
        raw,
        error=f"invalid_json: {why}; the rest of the array (from line {line}) can't be split into records",
    )


def _record(chunk: str, value: Any, display: str, line: int, strict: bool, mapping: Mapping[str, str] | None) -> Row:
    raw = chunk.encode("utf-8", "surrogateescape")
    if not strict or _SURROGATE_ESCAPE.search(chunk):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return Row(
                display, line, raw, error="invalid_utf8: the record holds bytes or \\u escapes that are not text"
            )
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        return Row(
            display, line, raw, error=f"not_an_object: the record is {kind}; each record must be one JSON object"
        )
    return Row(display, line, raw, record=apply_column_mapping(value, mapping))
