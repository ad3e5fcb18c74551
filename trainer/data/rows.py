"""Reading training files and turning every supported format into chat messages.

A *row* is one non-blank JSONL line or one non-blank CSV record, with its file (the path relative
to the data folder), its 1-based physical line number (for CSV, the line where the record starts;
lines are counted by `\n`, so CRLF files number the same) and its raw bytes, so a quarantined row
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

import base64
import hashlib
import json
import json.encoder
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

try:  # a dependency of prefect, so present in every install; json is the fallback and the judge
    import orjson
except ImportError:  # pragma: no cover
    orjson = None
from trainer.data.formats import KNOWN_FIELDS

UTF8_BOM = b"\xef\xbb\xbf"


def _not_json(value: Any) -> str:
    """How values JSON has no type for (Parquet / Arrow bytes, dates, decimals) enter the canonical form."""
    if isinstance(value, (bytes, bytearray)):
        return "base64:" + base64.b64encode(value).decode("ascii")
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# The row key is the sha256 of this canonical JSON. It is also what the held-out split hashes, so
# it must not change between versions (changing it would move rows between train and eval).
# check_circular off: parsed JSON has no cycles, and the check costs a quarter of the encoding time.
# `default` only ever sees values JSON text can't hold (from Parquet / Arrow), so it changes no old key.
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, check_circular=False, default=_not_json)
# The C encoder `_CANONICAL.encode` builds on every call, built once (a fifth less time per row; the
# same bytes, as a test pins). Python builds without the C accelerator use `_CANONICAL.encode`.
_C_ENCODE = (
    json.encoder.c_make_encoder(None, _not_json, json.encoder.encode_basestring, None, ": ", ", ", True, False, True)
    if json.encoder.c_make_encoder is not None
    else None
)


def canonical_json(record: dict[str, Any]) -> str:
    """`json.dumps(record, sort_keys=True, ensure_ascii=False)`, the text the row key hashes."""
    return "".join(_C_ENCODE(record, 0)) if _C_ENCODE is not None else _CANONICAL.encode(record)


# orjson reads integers beyond 64 bits as floats; a run of 20 digits sends a line to json instead.
# (bytes.translate + `in` is ten times faster than a regex search here.)
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x61 for b in range(256))


_TWENTY_DIGITS = b"0" * 20


@dataclass(eq=False, slots=True)
class Row:
    file: str
    line: int
    raw: bytes
    record: dict[str, Any] | None = None
    error: str | None = None  # "reason: detail" from the contract vocabulary when the row can't be parsed
    _key: str | None = field(default=None, init=False, repr=False)

    @property
    def key(self) -> str:
        """Content hash of the parsed record: exact duplicates share it, and the eval split uses it.
        (Cached by hand: functools.cached_property takes a lock per call, a tenth of validation's time.)"""
        if self._key is None:
            payload = canonical_json(self.record) if self.record is not None else self.raw.decode("utf-8", "replace")
            self._key = hashlib.sha256(payload.encode("utf-8")).hexdigest()
        return self._key

    @property
    def reason(self) -> str | None:
        return self.error.partition(":")[0] if self.error else None


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
        return (
            None,
            f"invalid_utf8: byte {exc.start + 1} of the line (0x{body[exc.start]:02x}) is not UTF-8; re-save the file "
            "as UTF-8",
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid_json: {exc.msg.removesuffix(' at')} at column {exc.colno}"  # "…starting at"
    except RecursionError:
        return None, "invalid_json: nested too deeply"
    except ValueError as exc:  # an integer of more than 4,300 digits: Python's bound on int(text)
        return None, f"invalid_json: {str(exc).splitlines()[0]}"
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


def parse_jsonl(
    data: bytes, display: str, column_mapping: Mapping[str, str] | None = None, first_line: int = 1
) -> list[Row]:
    """The rows of JSON Lines bytes; `first_line`: the number of its first line in the file (a block
    of a file read in blocks)."""
    rows: list[Row] = []
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the final newline ends the last line; it starts no new one
    fast = None if _has_long_digit_run(data) else True  # one pass over the file instead of one per line
    loads = orjson.loads if orjson is not None and fast else None
    for number, raw in enumerate(lines, start=first_line):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        body = raw[3:] if number == 1 and raw.startswith(UTF8_BOM) else raw  # a BOM is not data
        if not body or body.isspace():
            continue  # blank lines separate nothing and hold no row
        try:  # parse_json_line, inlined for the common case
            value, error = (loads(body), None) if loads is not None else parse_json_line(body, fast)
        except orjson.JSONDecodeError:
            value, error = _parse_json_slow(body)
        if type(value) is dict and error is None:
            rows.append(
                Row(display, number, raw, apply_column_mapping(value, column_mapping) if column_mapping else value)
            )
        elif error is not None:
            rows.append(Row(display, number, raw, error=error))
        else:
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
                type(value), "a number"
            )
            rows.append(
                Row(display, number, raw, error=f"not_an_object: the line is {kind}; each line must be one JSON object")
            )
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
