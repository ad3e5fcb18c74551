"""One Prefect task per pipeline stage: retries, retry conditions and Prefect artifacts. Thin: the
work itself is in `trainer`, which knows nothing of Prefect."""

from tasks.backup import backup_artifacts
from tasks.evaluate import evaluate_adapter
from tasks.register import register_model
from tasks.resolve import resolve_model_assets
from tasks.train import train_adapter
from tasks.validate import validate_data

__all__ = ["validate_data", "resolve_model_assets", "train_adapter", "evaluate_adapter", "register_model", "backup_artifacts"]
