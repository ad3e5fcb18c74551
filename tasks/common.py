from __future__ import annotations

import uuid
from pathlib import Path

from trainer import state
from trainer.settings import Settings


def run_identity(settings: Settings) -> tuple[str, str, Path]:
    """(run key, run name, output dir) of this flow run.

    Keyed by the Prefect flow run id, so a retried task or a retried flow run finds the same
    MLflow run, output folder and checkpoints instead of starting a second one.
    """
    from prefect.runtime import flow_run

    run_key = str(flow_run.id or uuid.uuid4())
    run_name = f"{settings.model_name}-{run_key[:8]}"
    output_dir = settings.output_dir or state.runs_dir() / run_name
    return run_key, run_name, Path(output_dir).resolve()


def is_retryable(exc: BaseException) -> bool:
    """Transient failures are retried; bad settings, bad data and out-of-memory are not."""
    from trainer.contracts import DataGateError, DataUnusableError
    from trainer.settings import SettingsError

    if isinstance(exc, (SettingsError, DataGateError, DataUnusableError, ValueError, MemoryError)):
        return False
    return "out of memory" not in str(exc).lower()


def retry_transient(task, task_run, state) -> bool:
    """Prefect retry condition: re-raise the task's exception and ask `is_retryable`."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        return is_retryable(exc)
    return False
