"""Rows from a data file, by its type: the one entry point that turns a file's bytes into rows.

`*.jsonl` / `*.ndjson`: JSON Lines; `*.json`: a JSON array of records, JSON Lines or one record;
`*.gz`: the same, gzip-compressed (lines counted in the uncompressed text); `*.csv`; `*.parquet`
and `datasets` folders (row numbers); `*.txt` (with the `text` format only): one `{"text": ...}`
row per non-blank line.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from trainer.data.columnar import ColumnarError, parse_parquet, read_hf_folder
from trainer.data.csv_rows import parse_csv
from trainer.data.files import display_name, read_file_bytes, suffix
from trainer.data.json_rows import NotRecords, parse_json_file
from trainer.data.rows import UTF8_BOM, Row, apply_column_mapping, parse_jsonl

__all__ = ["ColumnarError", "NotRecords", "UnreadableData", "iter_rows", "parse_rows", "read_rows"]

# JSON Lines files past this size are read in blocks of about BLOCK_BYTES, never whole: a file of a
# million rows is a gigabyte. Smaller files are read at once (one pass, and the whole-file hints).
STREAM_BYTES = 64 * 2**20
BLOCK_BYTES = 8 * 2**20


class UnreadableData(ValueError):
    """A file whose bytes can't be turned into rows at all (not gzip, not Parquet, ...)."""


def read_rows(path: Path, root: Path, column_mapping: Mapping[str, str] | None = None) -> list[Row]:
    """All rows of one data file or `datasets` folder (OSError when it can't be read)."""
    display = display_name(path, root)
    if Path(path).is_dir():
        return read_hf_folder(path, display, column_mapping)
    return parse_rows(path, read_file_bytes(path), display, column_mapping)


def iter_rows(path: Path, display: str, column_mapping: Mapping[str, str] | None = None) -> Iterator[Row]:
    """The rows of one data file or `datasets` folder as they are read (OSError when it can't be)."""
    path = Path(path)
    if path.is_dir():
        yield from read_hf_folder(path, display, column_mapping)
    elif suffix(path) in (".jsonl", ".ndjson") and os.stat(path).st_size > STREAM_BYTES:
        yield from _jsonl_blocks(path, display, column_mapping)
    else:
        yield from parse_rows(path, read_file_bytes(path), display, column_mapping)


def _jsonl_blocks(path: Path, display: str, column_mapping: Mapping[str, str] | None) -> Iterator[Row]:
    line = 1  # only regular files get here: FIFOs and devices have st_size 0 and read_file_bytes refuses them
    with open(path, "rb") as fh:
        rest = b""
        while True:
            block = fh.read(BLOCK_BYTES)
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n")
            if cut < 0:  # a line longer than a block: keep reading
                rest = block
                continue
            rest, block = block[cut + 1 :], block[: cut + 1]
            yield from parse_jsonl(block, display, column_mapping, first_line=line)
            line += block.count(b"\n")
        if rest:
            yield from parse_jsonl(rest, display, column_mapping, first_line=line)


# Text data compresses 3-10x; a decompression bomb ~1000x (9 MB that expand to 2 GiB took 6.3 GB of
# memory). Past MAX_GZIP_RATIO (and a floor for small, very repetitive files) the file is refused
# while it is being expanded, not after.
MAX_GZIP_RATIO = 100
GZIP_FLOOR_BYTES = 64 * 2**20


def gunzip_bounded(data: bytes) -> bytes:
    """gzip's members decompressed, refused (UnreadableData) past the ratio bound or when truncated."""
    limit = max(GZIP_FLOOR_BYTES, MAX_GZIP_RATIO * len(data))
    out = bytearray()
    rest = data
    try:
        while rest:
            member = zlib.decompressobj(wbits=31)  # a gzip header and trailer; members follow one another
            while not member.eof:
                chunk = member.decompress(rest, limit + 1 - len(out))
                out += chunk
                if len(out) > limit:
                    raise UnreadableData(
                        f"expands to more than {limit / 2**20:.0f} MiB from {len(data) / 2**20:.1f} MiB "
                        f"(over {MAX_GZIP_RATIO}x: a decompression bomb?); unpack it and check it"
                    )
                rest = member.unconsumed_tail
                if not rest and not chunk and not member.eof:
                    raise UnreadableData("not a readable gzip file (truncated)")
            rest = member.unused_data
    except zlib.error as exc:
        raise UnreadableData(f"not a readable gzip file ({exc})") from None
    return bytes(out)


def parse_rows(path: Path, data: bytes, display: str, column_mapping: Mapping[str, str] | None = None) -> list[Row]:
    """Rows of a file's bytes. UnreadableData / ColumnarError for bytes that are not the file's type,
    NotRecords for a .json file that holds no records."""
    kind = suffix(Path(path))
    if kind.endswith(".gz"):
        data = gunzip_bounded(data)
        kind = kind[: -len(".gz")]
    if kind == ".csv":
        return parse_csv(data, display, column_mapping)
    if kind == ".json":
        return parse_json_file(data, display, column_mapping)
    if kind == ".parquet":
        return parse_parquet(data, display, column_mapping)
    if kind == ".txt":
        return parse_text_lines(data, display, column_mapping)
    return parse_jsonl(data, display, column_mapping)


def parse_text_lines(data: bytes, display: str, column_mapping: Mapping[str, str] | None = None) -> list[Row]:
    """Plain text, one document per non-blank line (LLaMA-Factory's `*.txt` files)."""
    rows = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        body = raw.removeprefix(UTF8_BOM) if number == 1 else raw
        if not body.strip():
            continue
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            rows.append(Row(display, number, raw, error=f"invalid_utf8: byte {exc.start + 1} of the line is not UTF-8"))
            continue
        rows.append(Row(display, number, raw, record=apply_column_mapping({"text": text}, column_mapping)))
    return rows
