"""The names of the files the pipeline writes and reads back: one place for the on-disk layout of
runs, checkpoints, adapters and backups, so a writer and its reader can never disagree.
"""

from __future__ import annotations

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
