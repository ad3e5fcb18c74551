"""The names of the files the pipeline writes and reads back: one place for the on-disk layout of
runs, checkpoints, adapters and backups, so a writer and its reader can never disagree.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

# Inside every checkpoint and adapter folder: the run's settings (redacted), so a folder says how
# it was trained and `trained_artifact` can check it fits the base.
SETTINGS_FILE = "llm_trainer_settings.yaml"
# Written last into a checkpoint: its presence means every other file was written (and fsynced).
CHECKPOINT_MARKER = "llm_trainer_checkpoint.json"
# Where the Trainer stages a checkpoint before it is renamed into place (`checkpoints/.staging/`).
CHECKPOINT_STAGING = ".staging"
# Written last into a backup: the completion marker, with each file's sha256 and size.
BACKUP_MANIFEST = "MANIFEST.json"
# Written last into a merged export.
MERGED_MARKER = "llm_trainer_merged.json"
# Inside a run's output folder.
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
# Under the state folder: the valid rows of a validation (keyed by its cache key) and the tokenized
# training rows (keyed by their content), each folder beside a `<key>.lock` file.
VALIDATED_DIR = "validated"
EXAMPLES_FILE = "examples.arrow"  # in each validated/<key>/ folder
PREPARED_DIR = "prepared"
KEEP_KEYED = 5  # keyed folders kept under each (the most recently used)


def prune_keyed(root: Path, keep: int = KEEP_KEYED) -> None:
    """Only the `keep` most recently used keyed folders under `root` stay; one another process holds
    the lock of is never removed."""
    from filelock import FileLock, Timeout

    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in folders[keep:]:
        try:
            with FileLock(str(root / f"{old.name}.lock"), timeout=0):
                shutil.rmtree(old, ignore_errors=True)
        except Timeout:
            continue


def is_plain_relative(name: object) -> bool:
    """True when `name`, read from a file we did not necessarily write (a manifest, a completion
    marker), is a plain relative path: not absolute, no '..', '.' or empty parts, no backslash, NUL
    or scheme/drive. The one check of names that lead to files inside a folder."""
    if not isinstance(name, str) or not name:
        return False
    parts = name.split("/")
    return not (
        PurePosixPath(name).is_absolute()
        or any(part in ("", ".", "..") for part in parts)
        or "\\" in name
        or "\x00" in name
        or ":" in parts[0]  # a scheme (file:) or a drive (C:) would point somewhere else
    )


def inside(folder: Path, name: str) -> bool:
    """True when `folder / name` resolves inside `folder` (no symbolic link on the way leads out)."""
    root = os.path.realpath(folder)
    target = os.path.realpath(Path(folder) / name)
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)
