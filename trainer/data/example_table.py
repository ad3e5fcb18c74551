"""Valid rows on disk: an Arrow file of Examples, read lazily a record batch at a time.

Validation writes the rows it accepts here (`ExampleWriter`) instead of keeping them as Python
objects, and the stages hand on an `ExampleTable`: the file and, for a split, a subset or a sample,
the positions of its rows. So what passes between Prefect tasks, into a persisted task result or to
the processes of a data-parallel launch is a path and an index array, never millions of rows; a row
becomes an Example only while something reads it. A plain list of Examples works wherever a table
does (`take`, `keys_of`, `join`): small callers and tests keep using lists.

Each row is stored as its key, file, line and `body`, the JSON of (messages, tools, text,
continues) in the row's own key order (a chat template's `tojson` writes keys in that order, so it
is part of the trained text). `body` is also what the prepared-rows key hashes, without decoding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from trainer.data.files import stream_digest
from trainer.data.formats import Example

try:  # a dependency of prefect, so present in every install; json is the fallback
    import orjson
except ImportError:  # pragma: no cover
    orjson = None

BATCH_ROWS = 4096  # rows per Arrow record batch, and per block when reading


def example_body(example: Example) -> str:
    value = [example.messages, example.tools, example.text, example.continues]
    if orjson is not None:
        return orjson.dumps(value, default=str).decode("utf-8")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _example(key: str, file: str, line: int, body: str) -> Example:
    messages, tools, text, continues = orjson.loads(body) if orjson is not None else json.loads(body)
    return Example(key, file, line, messages=messages, text=text, tools=tools, continues=continues)


def _schema():
    import pyarrow as pa

    return pa.schema([("key", pa.string()), ("file", pa.string()), ("line", pa.int64()), ("body", pa.large_string())])


class ExampleWriter:
    """Examples appended to an Arrow file in record batches; the file appears whole or not at all."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = pa.ipc.new_file(self._sink, _schema())
        self._buffer: list[Example] = []
        self.rows = 0

    def add(self, examples: Iterable[Example]) -> None:
        for example in examples:
            self._buffer.append(example)
            if len(self._buffer) >= BATCH_ROWS:
                self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if not self._buffer:
            return
        rows = self._buffer
        batch = pa.record_batch(
            [
                pa.array([e.key for e in rows], pa.string()),
                pa.array([e.file for e in rows], pa.string()),
                pa.array([e.line for e in rows], pa.int64()),
                pa.array([example_body(e) for e in rows], pa.large_string()),
            ],
            schema=_schema(),
        )
        self._writer.write_batch(batch)
        self.rows += len(rows)
        self._buffer = []

    def close(self) -> ExampleTable:
        self._flush()
        self._writer.close()
        self._sink.close()
        digest, _ = stream_digest(self._tmp)  # kept with every view: a damaged file is found before it is read
        os.replace(self._tmp, self.path)
        return ExampleTable(self.path, digest=digest)

    def abort(self) -> None:
        try:
            self._writer.close()
            self._sink.close()
        finally:
            self._tmp.unlink(missing_ok=True)


class ExampleTable(Sequence):
    """A read-only sequence of the Examples in an Arrow file, or of some of them (`positions`).

    Rows are read a record batch at a time with plain reads, not through a memory map: a mapped file's
    pages stay resident (and counted in the process's RSS) once touched, so reading a million rows
    through a map would hold the whole file, ~0.8 GB, in the process. Every batch but the last holds
    BATCH_ROWS rows (ExampleWriter), so row p is in batch p // BATCH_ROWS."""

    def __init__(self, path: Path | str, positions: np.ndarray | None = None, digest: str | None = None) -> None:
        self.path = Path(path)
        self.positions = None if positions is None else np.asarray(positions, dtype=np.int64)
        self.digest = digest  # sha256 of the file as written
        self._reader = None
        self._rows: int | None = None

    def __reduce__(self):  # pickled (Prefect results, launch specs) as the path, positions and digest only
        return ExampleTable, (str(self.path), self.positions, self.digest)

    def intact(self) -> bool:
        """The file is there, has the bytes it was written with, and holds every row this view names."""
        try:
            if self.digest is not None and stream_digest(self.path)[0] != self.digest:
                return False
            self._reader, self._rows = None, None  # read the file as it is now
            rows = self.rows_in_file
        except (OSError, ValueError):  # gone, unreadable, or not an Arrow file (ArrowInvalid)
            return False
        return self.positions is None or not len(self.positions) or int(self.positions.max()) < rows

    @property
    def reader(self):
        if self._reader is None:
            import pyarrow as pa

            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path}: the validated rows are gone; run validation again")
            self._reader = pa.ipc.open_file(pa.OSFile(str(self.path)))
        return self._reader

    @property
    def rows_in_file(self) -> int:
        if self._rows is None:
            reader = self.reader
            last = reader.num_record_batches - 1
            self._rows = 0 if last < 0 else last * BATCH_ROWS + reader.get_batch(last).num_rows
        return self._rows

    def __len__(self) -> int:
        return len(self.positions) if self.positions is not None else self.rows_in_file

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.select(np.arange(len(self))[index])
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        position = int(self.positions[index]) if self.positions is not None else index
        block = self._rows_at(np.array([position]), ["key", "file", "line", "body"])
        return _example(block["key"][0], block["file"][0], block["line"][0], block["body"][0])

    def select(self, positions: Sequence[int] | np.ndarray) -> ExampleTable:
        """A view of these rows of this view (positions into it, in the order given)."""
        chosen = np.asarray(positions, dtype=np.int64)
        return ExampleTable(self.path, self.positions[chosen] if self.positions is not None else chosen, self.digest)

    def _rows_at(self, positions: np.ndarray, columns: list[str]) -> dict[str, list]:
        """The rows at these file positions, in their order: each batch they fall in read once."""
        import pyarrow as pa

        order = np.argsort(positions, kind="stable")
        ordered = positions[order]
        batches = ordered // BATCH_ROWS
        out: dict[str, list] = {c: [None] * len(positions) for c in columns}
        for batch in np.unique(batches):
            where = batches == batch
            part = self.reader.get_batch(int(batch)).select(columns)
            part = part.take(pa.array(ordered[where] - int(batch) * BATCH_ROWS)).to_pydict()
            slots = order[where]
            for column in columns:
                values = out[column]
                for slot, value in zip(slots, part[column], strict=True):
                    values[slot] = value
        return out

    def _blocks(self, columns: list[str]) -> Iterator[dict[str, list]]:
        if self.positions is None:
            for i in range(self.reader.num_record_batches):
                yield self.reader.get_batch(i).select(columns).to_pydict()
            return
        for start in range(0, len(self.positions), BATCH_ROWS):
            yield self._rows_at(self.positions[start : start + BATCH_ROWS], columns)

    def __iter__(self) -> Iterator[Example]:
        for block in self._blocks(["key", "file", "line", "body"]):
            yield from map(_example, block["key"], block["file"], block["line"], block["body"])

    def keys(self) -> list[str]:
        return [key for block in self._blocks(["key"]) for key in block["key"]]

    def bodies(self) -> Iterator[str]:
        for block in self._blocks(["body"]):
            yield from block["body"]


def keys_of(examples: Sequence[Example]) -> list[str]:
    return examples.keys() if isinstance(examples, ExampleTable) else [e.key for e in examples]


def bodies_of(examples: Sequence[Example]) -> Iterator[str]:
    return examples.bodies() if isinstance(examples, ExampleTable) else map(example_body, examples)


def take(examples: Sequence[Example], positions: Sequence[int]) -> Sequence[Example]:
    """These rows of `examples`, in this order: a view of a table, a list of a list."""
    if isinstance(examples, ExampleTable):
        return examples.select(positions)
    return [examples[i] for i in positions]


def join(first: Sequence[Example], second: Sequence[Example]) -> Sequence[Example]:
    """`first` then `second`: one view when both are views of the same file, else a list."""
    if isinstance(first, ExampleTable) and isinstance(second, ExampleTable) and first.path == second.path:
        whole = np.arange(first.rows_in_file)
        parts = [v.positions if v.positions is not None else whole for v in (first, second)]
        return ExampleTable(first.path, np.concatenate(parts), first.digest)
    return [*first, *second]
