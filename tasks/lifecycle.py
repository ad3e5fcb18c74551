"""The MLflow run ends with the status its flow run really ended in.

- Prefect state hooks on the flows (`END_RUN_HOOKS`): a flow run that fails ends its MLflow run
  FAILED, one that crashes or is cancelled ends it KILLED, with the reason as a tag (the report
  stage ends a successful one FINISHED).
- A SIGKILL runs no hook: the next flow run's start closes every run whose process is gone
  (`close_orphaned_runs`): KILLED when the process recorded on it no longer runs on this host, or
  what Prefect says of the flow run when it ran elsewhere (a deployment's worker).

The runs are found by their run-key tag (the flow-run id), so a hook needs nothing but the flow run.
"""

from __future__ import annotations

import logging
import uuid

from trainer import registry

log = logging.getLogger("llm_trainer.lifecycle")

DEFAULT_EXPERIMENT = "llm-trainer"


def _experiment_name(flow_run) -> str:
    settings = (flow_run.parameters or {}).get("settings")
    name = getattr(settings, "experiment_name", None)
    if name is None and isinstance(settings, dict):
        name = settings.get("experiment_name")
    return name or DEFAULT_EXPERIMENT


def _end(flow_run, state, status: str) -> None:
    if _tracking_unavailable(state):  # asking the same dead server again would only wait its budget again
        log.warning(
            "The MLflow run of flow run %s stays RUNNING while its server does not answer; the next run "
            "closes it as KILLED",
            flow_run.name,
        )
        return
    reason = f"Prefect flow run {flow_run.name} {state.name}: {state.message or ''}".strip()
    try:
        run_id = registry.end_run_by_key(_experiment_name(flow_run), str(flow_run.id), status, reason)
    except Exception as exc:  # a hook must not hide the failure it reports
        log.warning("Could not end the MLflow run of flow run %s as %s: %s", flow_run.name, status, exc)
        return
    if run_id:
        log.info("MLflow run %s ended %s (%s)", run_id, status, state.name)


def _tracking_unavailable(state) -> bool:
    from trainer.errors import TrackingUnavailableError

    try:
        return isinstance(state.result(raise_on_failure=False), TrackingUnavailableError)
    except Exception:  # a result that can't be read back says nothing about the server
        return False


def end_run_failed(flow, flow_run, state) -> None:
    _end(flow_run, state, "FAILED")


def end_run_killed(flow, flow_run, state) -> None:
    _end(flow_run, state, "KILLED")


# `@flow(**END_RUN_HOOKS)`
END_RUN_HOOKS = {
    "on_failure": [end_run_failed],
    "on_crashed": [end_run_killed],
    "on_cancellation": [end_run_killed],
}


def flow_run_end_status(run_key: str) -> str | None:
    """The MLflow status for a run held elsewhere whose Prefect flow run has ended (FAILED, or KILLED
    for crashed / cancelled); None while it runs, or when Prefect does not know it."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        flow_run_id = uuid.UUID(run_key)
    except ValueError:
        return None
    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(flow_run_id).state
        except ObjectNotFound:
            return None
    if state is None or not state.is_final() or state.is_completed():
        return None
    return "FAILED" if state.is_failed() else "KILLED"


def close_orphaned_runs(experiment_name: str) -> None:
    """At the start of a flow run: close the runs of dead processes (see the module's docstring).
    Never fails the run that asks: a failure here is a warning."""
    try:
        closed = registry.close_orphaned_runs(experiment_name, flow_run_end_status)
    except Exception as exc:
        log.warning("Could not check for MLflow runs left open by killed processes: %s", exc)
        return
    for run_id, run_name, status in closed:
        log.warning(
            "MLflow run %s (%s) was left RUNNING by a process that is gone; closed as %s", run_id, run_name, status
        )
