"""One Prefect task per pipeline stage: retries, retry conditions and Prefect artifacts. Thin: the
work itself is in `trainer/stages/`, which knows nothing of Prefect.

Importing the tasks installs the retry policy's log filter (tasks/retry.py) and the redaction of
every log record (trainer/redact.py), in every process that runs them (the CLI's, a deployment's
worker): an explained failure is logged without its traceback, and no log line carries a secret.
"""

from tasks.backup import backup_artifacts
from tasks.evaluate import evaluate_adapter
from tasks.export import export_merged_model
from tasks.lifecycle import END_RUN_HOOKS
from tasks.promote import promote_model
from tasks.refine import close_refine_run, open_refine_run
from tasks.register import register_model
from tasks.report import report_run
from tasks.resolve import resolve_model_assets
from tasks.retry import install_log_filter
from tasks.select import select_rows
from tasks.train import train_adapter
from tasks.unchanged import skip_if_unchanged
from tasks.validate import validate_data
from trainer.redact import install_log_redaction

__all__ = [
    "validate_data",
    "select_rows",
    "skip_if_unchanged",
    "resolve_model_assets",
    "train_adapter",
    "evaluate_adapter",
    "register_model",
    "promote_model",
    "backup_artifacts",
    "report_run",
    "export_merged_model",
    "open_refine_run",
    "close_refine_run",
    "END_RUN_HOOKS",
]

install_log_filter()
install_log_redaction()
