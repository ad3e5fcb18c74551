"""The names of the files the pipeline writes and reads back: one place for the on-disk layout of
runs, checkpoints, adapters and backups, so a writer and its reader can never disagree.
"""

from __future__ import annotations

import os
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
