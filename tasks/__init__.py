"""One Prefect task per pipeline stage: retries, retry conditions and Prefect artifacts. Thin: the
work itself is in `trainer`, which knows nothing of Prefect."""

from tasks.backup import backup_artifacts
from tasks.evaluate import evaluate_adapter
from tasks.export import export_merged_model
from tasks.refine import close_refine_run, open_refine_run
from tasks.register import register_model
from tasks.report import report_run
from tasks.resolve import resolve_model_assets
from tasks.select import select_rows
from tasks.train import train_adapter
from tasks.validate import validate_data

__all__ = [
    "validate_data", "select_rows", "resolve_model_assets", "train_adapter", "evaluate_adapter", "register_model",
    "backup_artifacts", "report_run", "export_merged_model", "open_refine_run", "close_refine_run",
]
