"""Training rows tokenized once, kept on disk as a memory-mapped Arrow dataset (HF `datasets`).

Tokenizing is the slow part of starting a run on real-sized data (100,000 rows: ~2 minutes on two
cores) and used to happen again on every attempt: each retry, each resume, the next run on the same
data, and in every process of a data-parallel launch. Here the tokenized rows live under
`<state>/prepared/<key>/`, where the key is the content of everything that changes the tokens: every
row's content in order, the tokenizer's files (chat template included), max_seq_length,
train_on_prompt and the tokenizing code itself. The first process to get the lock prepares; the
others, and every later attempt with the same key, map the same files (no copy in memory).

Rows are read from the validated table in blocks and written as they are tokenized, so a million
rows are prepared in the memory of a few thousand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trainer.data.example_table import bodies_of
from trainer.data.files import stream_digest
from trainer.data.formats import Example
from trainer.layout import prune_keyed

log = logging.getLogger("llm_trainer.prepared")
PREPARED_VERSION = 2  # raise when the stored layout changes
ROWS_FILE = "rows.arrow"
BLOCK_ROWS = 2048  # tokenized rows per Arrow record batch


@dataclass(frozen=True)
class Prepared:
    rows: PreparedRows
    too_long: int  # rows left out, longer than max_seq_length
    unrenderable: int  # rows the chat template can't render, left out
    reused: bool
    seconds: float
    key: str


class PreparedRows:
    """A map-style dataset over the prepared rows (the Trainer needs __len__/__getitem__)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def lengths(self) -> list[int]:
        """Tokens per row, stored beside them (the length-grouped sampler reads these, not the rows)."""
        return self.dataset["length"][:] if len(self) else []

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        row = self.dataset[int(index)]
        return {"input_ids": row["input_ids"], "labels": row["labels"]}


def preparation_key(
    examples: Sequence[Example], tokenizer_dir: Path, max_seq_length: int, train_on_prompt: bool
) -> str:
    from trainer.model.assets import tokenizer_digest
    from trainer.model.rendering_code import rendering_code

    digest = hashlib.sha256()
    for path in (*rendering_code(), Path(__file__)):  # how rows become tokens, and how they are stored
        digest.update(path.read_bytes())
    head = [PREPARED_VERSION, tokenizer_digest(tokenizer_dir), max_seq_length, train_on_prompt, len(examples)]
    digest.update(json.dumps(head).encode())
    for body in bodies_of(examples):  # the stored JSON of each row, not decoded
        digest.update(body.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def prepare(
    examples: Sequence[Example],
    tokenizer,
    tokenizer_dir: Path,
    max_seq_length: int,
    train_on_prompt: bool,
    root: Path,
    processes: int = 0,
) -> Prepared:
    """The tokenized rows for these settings: reused when prepared before, else tokenized and stored
    (in `processes` processes; 0: trainer.model.token_pool.processes_for decides)."""
    from filelock import FileLock

    started = time.perf_counter()
    key = preparation_key(examples, tokenizer_dir, max_seq_length, train_on_prompt)
    folder = root / key
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock"), timeout=4 * 3600):
        reused = _intact(folder)
        if not reused:
            _write(folder, examples, tokenizer, max_seq_length, train_on_prompt, processes)
        prepared = _load(folder, reused, started, key)
    os.utime(folder)  # most recently used: kept by _prune
    prune_keyed(root)
    log.info(
        "Training rows %s: %d rows (%d longer than max_seq_length, %d the template can't render left out) in %.1fs "
        "(%s)",
        "reused, prepared before" if reused else "prepared",
        len(prepared.rows),
        prepared.too_long,
        prepared.unrenderable,
        prepared.seconds,
        folder,
    )
    return prepared


def _write(
    folder: Path, examples: Sequence[Example], tokenizer, max_seq_length: int, train_on_prompt: bool, processes: int
) -> None:
    """Tokenize into a staging folder beside the final one, block by block, and rename it into place once whole."""
    import pyarrow as pa

    from trainer.model.token_pool import processes_for
    from trainer.model.tokens import tokenize_rows

    staging = folder.with_name(f".{folder.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32())), ("length", pa.int32())])
    block: list = []
    try:
        # Arrow's stream format, the one `datasets` keeps its own cache files in (Dataset.from_file).
        with pa.OSFile(str(staging / ROWS_FILE), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:

            def flush() -> None:
                if block:
                    ids = pa.array([t.input_ids for t in block], pa.list_(pa.int32()))
                    labels = pa.array([t.labels for t in block], pa.list_(pa.int32()))
                    length = pa.array([len(t.input_ids) for t in block], pa.int32())
                    writer.write_batch(pa.record_batch([ids, labels, length], schema=schema))
                    block.clear()

            def keep(tokenized) -> None:
                block.append(tokenized)
                if len(block) >= BLOCK_ROWS:
                    flush()

            workers = processes_for(len(examples), processes)
            rows = tokenize_rows(tokenizer, examples, max_seq_length, train_on_prompt, keep, workers)
            flush()
        meta = {
            "rows": rows.kept_count,
            "too_long": rows.too_long,
            "unrenderable": len(rows.unrenderable),
            "sha256": stream_digest(staging / ROWS_FILE)[0],
        }
        (staging / "prepared.json").write_text(json.dumps(meta), encoding="utf-8")  # last: marks it whole
        if folder.exists():
            shutil.rmtree(folder)  # a half-written one of a killed process (no prepared.json)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _intact(folder: Path) -> bool:
    """Prepared before, whole (prepared.json is written last) and unchanged since (its rows file has the
    sha256 recorded then); a damaged one is said and prepared again, never read."""
    marker = folder / "prepared.json"
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
        if stream_digest(folder / ROWS_FILE)[0] == meta["sha256"]:
            return True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    log.warning("Prepared rows in %s are damaged or from an older version; preparing them again", folder)
    return False


def _load(folder: Path, reused: bool, started: float, key: str) -> Prepared:
    import datasets

    meta = json.loads((folder / "prepared.json").read_text(encoding="utf-8"))
    # Memory-mapped Arrow; no rows (every one too long or unrenderable): the caller says so.
    dataset = datasets.Dataset.from_file(str(folder / ROWS_FILE)) if meta["rows"] else []
    return Prepared(
        rows=PreparedRows(dataset),
        too_long=int(meta["too_long"]),
        unrenderable=int(meta["unrenderable"]),
        reused=reused,
        seconds=time.perf_counter() - started,
        key=key,
    )
