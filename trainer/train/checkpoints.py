"""Checkpoints: which files make one complete, finding the newest complete one, and the rules a
resume checks. The Trainer subclass (`hf_trainer`) writes them atomically.

The completion marker (`llm_trainer_checkpoint.json`, written last) records every file's size and
sha256. Before a resume, or before a checkpoint or adapter folder is used as `trained_artifact`,
`verify_checkpoint` / `verify_adapter` re-check them and the files' own structure (JSON parses,
a safetensors file is as long as its header says, a torch file is a whole zip archive), so a
truncated, emptied or replaced file stops the run at once with one line naming it, before any model
is loaded, instead of failing inside torch after minutes of retries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path

from trainer.errors import CheckpointError
from trainer.layout import CHECKPOINT_MARKER, inside, is_plain_relative
from trainer.model.runtime import world_size

log = logging.getLogger("llm_trainer.training")


# What a checkpoint needs for an exact resume; the marker is written last (see hf_trainer). Plus the
# RNG state: `rng_state.pth` from one process, `rng_state_<rank>.pth` from each of several.
CHECKPOINT_FILES = (
    "trainer_state.json",
    "optimizer.pt",
    "scheduler.pt",
    "adapter_model.safetensors",
    CHECKPOINT_MARKER,
)


def is_complete_checkpoint(path: Path) -> bool:
    return (
        path.is_dir() and all((path / name).is_file() for name in CHECKPOINT_FILES) and any(path.glob("rng_state*.pth"))
    )


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The newest checkpoint that has every file a resume needs; incomplete ones are skipped."""
    if not checkpoints_dir.is_dir():
        return None
    candidates = sorted(
        (p for p in checkpoints_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
        reverse=True,
    )
    for path in candidates:
        if is_complete_checkpoint(path):
            return path
        log.warning("Skipping incomplete checkpoint %s", path)
    return None


def warn_if_world_size_changed(checkpoint: Path) -> None:
    """A checkpoint resumes exactly only with the process count that wrote it (data shards and
    per-process RNG states); with another count training continues, not bit for bit."""
    saved = len(list(checkpoint.glob("rng_state_*.pth"))) or 1
    if saved != world_size():
        log.warning(
            "Checkpoint %s was written by %d process(es), resuming with %d: training continues, "
            "but not exactly as the original run would have",
            checkpoint,
            saved,
            world_size(),
        )


def fsync_tree(path: Path) -> None:
    for item in sorted(path.rglob("*")):
        if item.is_file():
            with item.open("rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(folder: Path) -> dict[str, dict[str, object]]:
    """relative path -> {"bytes", "sha256"} of every file in `folder` but the marker (for the marker)."""
    return {
        path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != CHECKPOINT_MARKER
    }


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is unusable (truncated, padded, no header), read from its header alone."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length < 2 or length > size - 8:
            return f"is truncated or not a safetensors file ({size} bytes)"
        try:
            header = json.loads(fh.read(length))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
            return "has an unreadable safetensors header"
    if 8 + length + end != size:
        return f"is truncated: {size} bytes, its header needs {8 + length + end}"
    return None


def _structure_problem(path: Path) -> str | None:
    """Why a checkpoint file cannot be read, from its own structure (no model, no torch needed)."""
    if path.stat().st_size == 0:
        return "is empty"
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return "is not valid JSON"
    elif path.suffix == ".safetensors":
        return _safetensors_problem(path)
    elif path.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(path):
        return "is truncated or not a torch file (not a whole zip archive)"
    return None


def _recorded_problem(path: Path, entry: dict) -> str | None:
    size = path.stat().st_size
    if size != entry["bytes"]:
        return f"is {size} bytes, the completion marker records {entry.get('bytes')} (truncated or replaced)"
    if entry.get("sha256") and _sha256(path) != entry["sha256"]:
        return "changed since the checkpoint was written (sha256 differs from the completion marker)"
    return None


def _recorded_files(path: Path, marker: Path) -> dict[str, dict]:
    """The marker's {"files": {name: {"bytes": int, "sha256": str}}}, each name a plain path inside the
    checkpoint; CheckpointError for anything else (a marker is read back from a folder that may come
    from elsewhere: a name must never lead out of it, a value never crash the check)."""

    def refused(why: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path}: {marker.name} {why}; use an earlier checkpoint")

    try:
        document = json.loads(marker.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise refused("is not valid JSON") from None
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, dict):
        raise refused('has no "files" object')
    for name, entry in files.items():
        if not is_plain_relative(name) or not inside(path, name):
            raise refused(f"names {name!r}, which is not a file inside the checkpoint")
        if not (
            isinstance(entry, dict)
            and type(entry.get("bytes")) is int
            and entry["bytes"] >= 0
            and isinstance(entry.get("sha256", ""), str)
        ):
            raise refused(f"records {name} as {str(entry)[:80]!r}, not a size and sha256")
    return files


def verify_checkpoint(path: Path) -> None:
    """CheckpointError naming the first file of checkpoint `path` that is missing, truncated, changed
    or unreadable, checked against the completion marker's sizes and sha256 and the files' structure."""
    marker = path / CHECKPOINT_MARKER
    if not marker.is_file():
        raise CheckpointError(
            f"checkpoint {path}: no completion marker {CHECKPOINT_MARKER}, so it was never completely written "
            "(a killed save, or not written by llm-trainer); use an earlier checkpoint"
        )
    recorded = _recorded_files(path, marker)
    required = [name for name in CHECKPOINT_FILES if name != CHECKPOINT_MARKER]
    if not any(path.glob("rng_state*.pth")):
        required.append("rng_state.pth")
    for name in sorted({*required, *recorded}):
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path}: {name} is missing; use an earlier checkpoint")
        problem = _recorded_problem(file, recorded[name]) if name in recorded else None
        problem = problem or _structure_problem(file)
        if problem:
            raise CheckpointError(f"checkpoint {path}: {name} {problem}; use an earlier checkpoint")
    for file in sorted(path.glob("rng_state*.pth")):  # the other ranks' states, of an older marker
        problem = _structure_problem(file)
        if problem:
            raise CheckpointError(f"checkpoint {path}: {file.name} {problem}; use an earlier checkpoint")


ADAPTER_WEIGHTS = "adapter_model.safetensors"


def verify_adapter(path: Path) -> None:
    """CheckpointError when the adapter folder's weights are missing or do not load."""
    weights = path / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"adapter {path}: {ADAPTER_WEIGHTS} is missing")
    problem = _structure_problem(weights)
    if problem is None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            load_file(weights)
        except (SafetensorError, OSError, ValueError) as exc:
            problem = f"does not load ({' '.join(str(exc).split())[:200]})"
    if problem:
        raise CheckpointError(f"adapter {path}: {ADAPTER_WEIGHTS} {problem}")
