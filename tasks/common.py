from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


def orchestration_tags() -> dict[str, str]:
    """Where this flow run really ran, next to the `running_on` setting it asked for: its
    deployment and the work pool the worker pulled it from (empty when run in-process)."""
    from prefect.runtime import deployment, flow_run

    tags = {"prefect_deployment": deployment.name or "", "prefect_work_pool": ""}
    if deployment.id and flow_run.id:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            tags["prefect_work_pool"] = client.read_flow_run(flow_run.id).work_pool_name or ""
    return tags


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


@contextmanager
def registry_lock(model_name: str, timeout_seconds: float = 1800) -> Iterator[None]:
    """One registration (and promotion decision) at a time per registered model, across every
    deployment and ad hoc run that talks to this Prefect API.

    A deployment's `concurrency_limit` only serialises runs of that one deployment; the scheduled
    and the ad hoc deployment of one model could otherwise both read the same champion and both
    promote. A Prefect global concurrency limit of 1 named after the model closes that; it is
    created on first use (Prefect no longer creates limits implicitly).
    """
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    name = "llm-trainer-register-" + re.sub(r"[^A-Za-z0-9._-]", "-", model_name)
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name, 1)
        except ObjectAlreadyExists:  # created by a concurrent run between the read and the create
            pass
    with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, strict=True):
        yield
