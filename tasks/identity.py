"""The flow run's identity, from Prefect: the run key (its flow-run id), run name and output folder,
and where it really ran (deployment, work pool)."""

from __future__ import annotations

import uuid
from pathlib import Path

from trainer.config import state
from trainer.config.settings import Settings


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
