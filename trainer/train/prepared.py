"""Training rows tokenized once, kept on disk as a memory-mapped Arrow dataset (HF `datasets`).

Tokenizing is the slow part of starting a run on real-sized data (100,000 rows: ~2 minutes on two
cores) and used to happen again on every attempt: each retry, each resume, the next run on the same
data, and in every process of a data-parallel launch. Here the tokenized rows live under
`<state>/prepared/<key>/`, where the key is the content of everything that changes the tokens: every
row's content in order, the tokenizer's files (chat template included), max_seq_length,
train_on_prompt and the tokenizing code itself. The first process to get the lock prepares; the
others, and every later attempt with the same key, map the same files (no copy in memory).

What this does not do yet (issue "Real-sized data"): validation still holds every row in memory,
and the rows still pass between Prefect tasks as Python objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from trainer.data.formats import Example

log = logging.getLogger("llm_trainer.prepared")
PREPARED_DIR = "prepared"  # under the state folder
PREPARED_VERSION = 1  # raise when the stored layout changes
KEEP = 5  # prepared datasets kept (the most recently used)
_CODE = ("model/tokens.py", "model/templates.py", "model/turn_parts.py", "train/prepared.py")


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

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        row = self.dataset[int(index)]
        return {"input_ids": row["input_ids"], "labels": row["labels"]}


def preparation_key(examples: list[Example], tokenizer_dir: Path, max_seq_length: int, train_on_prompt: bool) -> str:
    from trainer.model.assets import tokenizer_digest

    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for name in _CODE:
        digest.update((root / name).read_bytes())
    head = [PREPARED_VERSION, tokenizer_digest(tokenizer_dir), max_seq_length, train_on_prompt, len(examples)]
    digest.update(json.dumps(head).encode())
    for e in examples:
        digest.update(
            json.dumps([e.messages, e.tools, e.text, e.continues], sort_keys=True, default=str).encode("utf-8")
        )
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def prepare(
    examples: list[Example],
    tokenizer,
    tokenizer_dir: Path,
    max_seq_length: int,
    train_on_prompt: bool,
    root: Path,
) -> Prepared:
    """The tokenized rows for these settings: reused when prepared before, else tokenized and stored."""
    from filelock import FileLock

    started = time.perf_counter()
    key = preparation_key(examples, tokenizer_dir, max_seq_length, train_on_prompt)
    folder = root / key
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock"), timeout=4 * 3600):
        reused = (folder / "prepared.json").is_file()
        if not reused:
            _write(folder, examples, tokenizer, max_seq_length, train_on_prompt)
        prepared = _load(folder, reused, started, key)
    os.utime(folder)  # most recently used: kept by _prune
    _prune(root, keep=KEEP)
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


def _write(folder: Path, examples: list[Example], tokenizer, max_seq_length: int, train_on_prompt: bool) -> None:
    """Tokenize into a staging folder beside the final one and rename it into place once whole."""
    import datasets

    from trainer.model.tokens import tokenize_rows

    staging = folder.with_name(f".{folder.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        rows = tokenize_rows(tokenizer, examples, max_seq_length, train_on_prompt)
        dataset = datasets.Dataset.from_dict(
            {"input_ids": [t.input_ids for t in rows.kept], "labels": [t.labels for t in rows.kept]},
            features=datasets.Features(
                {
                    "input_ids": datasets.Sequence(datasets.Value("int32")),
                    "labels": datasets.Sequence(datasets.Value("int32")),
                }
            ),
        )
        if len(dataset):  # `datasets` can't load an empty saved dataset back; none is saved
            datasets.disable_progress_bars()  # our log line says what was prepared, once
            dataset.save_to_disk(str(staging / "rows"))
        else:
            staging.mkdir(parents=True)
        meta = {"rows": len(rows.kept), "too_long": rows.too_long, "unrenderable": len(rows.unrenderable)}
        (staging / "prepared.json").write_text(json.dumps(meta), encoding="utf-8")  # last: marks it whole
        if folder.exists():
            shutil.rmtree(folder)  # a half-written one of a killed process (no prepared.json)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load(folder: Path, reused: bool, started: float, key: str) -> Prepared:
    import datasets

    meta = json.loads((folder / "prepared.json").read_text(encoding="utf-8"))
    # Memory-mapped Arrow; no rows (every one too long or unrenderable): the caller says so.
    dataset = datasets.load_from_disk(str(folder / "rows")) if meta["rows"] else []
    return Prepared(
        rows=PreparedRows(dataset),
        too_long=int(meta["too_long"]),
        unrenderable=int(meta["unrenderable"]),
        reused=reused,
        seconds=time.perf_counter() - started,
        key=key,
    )


def _prune(root: Path, keep: int) -> None:
    """Only the `keep` most recently used prepared datasets stay (each run's data is one)."""
    from filelock import FileLock, Timeout

    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in folders[keep:]:
        try:
            with FileLock(str(root / f"{old.name}.lock"), timeout=0):  # never one another process is using
                shutil.rmtree(old, ignore_errors=True)
        except Timeout:
            continue
