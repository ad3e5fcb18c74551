"""Rows of columnar files: Parquet (pyarrow) and folders written by Hugging Face `datasets`'
`save_to_disk` (read with `datasets.load_from_disk`, imported only when such a folder is there).

A row's "line" is its 1-based row number, and its raw bytes are the record as canonical JSON. A
null cell is a missing value, as an empty CSV cell is: Arrow gives every struct the union of all
rows' fields, so a chat turn read back from Parquet has `"weight": null` (and `"tool_calls": null`,
...) wherever the original turn had no such field; nulls are dropped at every depth.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer.data.rows import Row, apply_column_mapping, canonical_json


class ColumnarError(ValueError):
    """A Parquet file or `datasets` folder that can't be read at all."""


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def table_rows(records: list[dict[str, Any]], display: str, column_mapping: Mapping[str, str] | None) -> list[Row]:
    rows = []
    for number, record in enumerate(records, start=1):
        record = _drop_nulls(record)
        raw = canonical_json(record).encode("utf-8")
        rows.append(Row(display, number, raw, record=apply_column_mapping(record, column_mapping)))
    return rows


def parse_parquet(data: bytes, display: str, column_mapping: Mapping[str, str] | None = None) -> list[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ColumnarError(
            f"not a readable Parquet file ({str(exc).splitlines()[0] if str(exc) else exc!r})"
        ) from None
    return table_rows(table.to_pylist(), display, column_mapping)


def check_state_files(folder: Path) -> None:
    """`load_from_disk` opens the files `state.json` names, wherever they are: a folder from elsewhere
    could name an Arrow file outside it (absolute, or `../`) and its rows would be read as this folder's.
    Only plain names of files inside the folder are accepted (what `save_to_disk` writes)."""
    import json

    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        names = [entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        raise ColumnarError("a Hugging Face datasets folder whose state.json can't be read") from None
    for name in names:
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ColumnarError(f"state.json names the data file {name!r}, which is not a file inside this folder")
        if not (folder / name).is_file() or (folder / name).is_symlink():
            raise ColumnarError(f"state.json names the data file {name!r}, which is not a plain file in this folder")


def read_hf_folder(folder: Path, display: str, column_mapping: Mapping[str, str] | None = None) -> list[Row]:
    """The rows of a `save_to_disk` folder, as stored (images and audio stay undecoded dicts)."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - a dependency of the project
        raise ColumnarError("a Hugging Face datasets folder, but the `datasets` package is not installed") from None
    datasets.disable_progress_bars()
    check_state_files(folder)
    try:
        dataset = datasets.load_from_disk(str(folder))
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ColumnarError(f"a Hugging Face datasets folder that can't be loaded ({first})") from None
    if not isinstance(dataset, datasets.Dataset):
        raise ColumnarError("a DatasetDict folder; point training_data_path at the folder above it or at one split")
    return table_rows(dataset.with_format("arrow")[:].to_pylist(), display, column_mapping)
