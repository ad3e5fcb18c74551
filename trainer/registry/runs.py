"""MLflow runs: one per flow run, found again by its key tag; params, tags, metrics, artifacts and
dataset lineage.

`get_or_create_run` looks the run up by the flow-run key tag, which is what makes a retried or
re-run stage idempotent. Nothing here ends a run as a side effect (no `mlflow.start_run` blocks,
which end the run FINISHED when they exit): a run is RUNNING until the flow ends it with the status
it really ended in (`finish_run`, `end_run_by_key`), or until a later start finds its process gone
(`close_orphaned_runs`, from the host, pid and boot id recorded on it).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer.config import state
from trainer.config.settings import Settings
from trainer.redact import is_secret_name, redact
from trainer.registry.client import client, ensure_experiment, git_commit

RUN_KEY_TAG = "llm_trainer.run_key"
# The process that holds a run open: a later start closes the run if that process is gone.
HOST_TAG, BOOT_TAG, PID_TAG, PROCESS_START_TAG = (
    "llm_trainer.host",
    "llm_trainer.boot_id",
    "llm_trainer.pid",
    "llm_trainer.process_start",
)
END_REASON_TAG = "llm_trainer.end_reason"


def settings_params(settings: Settings) -> dict[str, str]:
    """Every setting as an MLflow param (strings, 6000 chars max). Secrets never reach here:
    tokens and credentials are read from the environment, not from settings."""
    params = {}
    for key, value in settings.model_dump(mode="json").items():
        if is_secret_name(key):
            continue
        params[key] = redact(
            "" if value is None else (json.dumps(value) if isinstance(value, (list, dict)) else str(value))
        )[:6000]
    return params


def settings_hash(settings: Settings) -> str:
    """A short hash of every recorded setting: versions trained with the same settings share it."""
    import hashlib

    return hashlib.sha256(json.dumps(settings_params(settings), sort_keys=True).encode()).hexdigest()[:16]


def get_or_create_run(settings: Settings, run_key: str, run_name: str, extra_tags: dict[str, str] | None = None) -> str:
    """The MLflow run of this flow run: found by its key tag, or created with params and tags."""
    c = client()
    experiment_id = ensure_experiment(settings.experiment_name)
    found = c.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=1)
    if found:  # a retried stage or a re-run of the flow run: this process holds the run now
        run_id = found[0].info.run_id
        set_tags(run_id, process_tags())
        if found[0].info.status != "RUNNING":
            c.update_run(run_id, status="RUNNING")
        return run_id
    tags = {
        RUN_KEY_TAG: run_key,
        "mlflow.runName": run_name,
        "element_name": settings.element_name,
        "version": settings.version,
        "running_on": settings.running_on,
        "base_model_architecture": settings.base_model_architecture,
        "git_commit": git_commit(),
        **process_tags(),
        **(extra_tags or {}),
    }
    run = c.create_run(experiment_id, tags={k: redact(str(v)) for k, v in tags.items()}, run_name=run_name)
    run_id = run.info.run_id
    from mlflow.entities import Param

    c.log_batch(run_id, params=[Param(k, v) for k, v in settings_params(settings).items()])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.yaml"
        path.write_text(redact(settings.to_yaml()), encoding="utf-8")
        c.log_artifact(run_id, str(path))
    return run_id


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_tag(run_id, key, redact(str(value)))


def set_parent_run(run_id: str, parent_run_id: str) -> None:
    """Nest `run_id` under `parent_run_id` (the MLflow UI shows nested runs by this tag)."""
    client().set_tag(run_id, "mlflow.parentRunId", parent_run_id)


def finish_run(run_id: str, status: str = "FINISHED") -> None:
    client().set_terminated(run_id, status)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_tags() -> dict[str, str]:
    pid = os.getpid()
    return {
        HOST_TAG: socket.gethostname(),
        BOOT_TAG: _boot_id(),
        PID_TAG: str(pid),
        PROCESS_START_TAG: _process_start(pid),
    }


def process_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process recorded on a run still runs: True / False on this host, None when the run
    was held elsewhere (only its orchestrator can tell)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not (tags.get(PID_TAG) or "").isdigit():
        return None
    if tags.get(BOOT_TAG) and tags[BOOT_TAG] != _boot_id():
        return False  # the machine rebooted since
    pid = int(tags[PID_TAG])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    recorded = tags.get(PROCESS_START_TAG)
    return not recorded or _process_start(pid) == recorded


def close_orphaned_runs(
    experiment_name: str, orchestrator_status: Callable[[str], str | None] | None = None
) -> list[tuple[str, str, str]]:
    """Close the RUNNING runs of this pipeline whose process is gone (a SIGKILL, a lost machine): KILLED
    when their process on this host no longer runs, or the status `orchestrator_status(run_key)`
    gives for a run held elsewhere (None: still running there, or unknown). Returns (run id, run
    name, status) of each run closed."""
    c = client()
    experiment = c.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    running = c.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=500)
    closed = []
    for run in running:
        tags = run.data.tags
        if RUN_KEY_TAG not in tags:
            continue  # not a flow run's (a restore's run is ended by the restore itself)
        alive, status = process_alive(tags), "KILLED"
        if alive is False:
            reason = f"its process {tags[PID_TAG]} on {tags[HOST_TAG]} is gone (killed or crashed)"
        elif alive is None and orchestrator_status is not None and (status := orchestrator_status(tags[RUN_KEY_TAG])):
            reason = f"its Prefect flow run ended ({status}) without closing it"
        else:
            continue
        c.set_tag(run.info.run_id, END_REASON_TAG, redact(f"closed by a later start: {reason}"))
        c.set_terminated(run.info.run_id, status)
        closed.append((run.info.run_id, run.info.run_name, status))
    return closed


def end_run_by_key(experiment_name: str, run_key: str, status: str, reason: str) -> str | None:
    """End the still-RUNNING MLflow run of flow run `run_key` with `status` (FAILED, KILLED) and why;
    a run already ended keeps its status. Returns the run id, if there is one."""
    c = client()
    experiment = c.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    found = c.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=1
    )
    if not found:
        return None
    run = found[0]
    if run.info.status == "RUNNING":
        c.set_tag(run.info.run_id, END_REASON_TAG, redact(reason)[:5000])
        c.set_terminated(run.info.run_id, status)
    return run.info.run_id


def artifact_location(run_id: str) -> str:
    """Where the run's artifacts are stored (redacted), as the tracking store records it."""
    return redact(client().get_run(run_id).info.artifact_uri)


def run_tags(run_id: str) -> dict[str, str]:
    return dict(client().get_run(run_id).data.tags)


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None, synchronous: bool = True) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
    client().log_batch(run_id, metrics=batch, synchronous=synchronous)


def log_artifact(run_id: str, path: Path, artifact_path: str | None = None) -> None:
    client().log_artifact(run_id, str(path), artifact_path)


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    client().log_text(run_id, redact(text), artifact_file)


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of every logged value of `key`, in step order."""
    return sorted((m.step, m.value) for m in client().get_metric_history(run_id, key))


def log_dataset(run_id: str, report, examples_count: int, context: str = "training") -> None:
    """Dataset lineage: the data folder, its fingerprint and counts as an MLflow dataset input.

    Through the client, not `with mlflow.start_run(run_id)`: leaving that block ends the run as
    FINISHED, and a run killed later would still read FINISHED."""
    import mlflow
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    c = client()
    frame = pd.DataFrame(
        [
            {
                "file": f.path,
                "format": f.format,
                "rows_total": float(f.rows_total),
                "rows_valid": float(f.rows_valid),
                "rows_quarantined": float(f.rows_quarantined),
            }
            for f in report.files
        ]
    )
    dataset = mlflow.data.from_pandas(
        frame, source=report.data_path, name=Path(report.data_path).name, digest=report.fingerprint[:32]
    )
    tags = [InputTag("contract_version", report.contract_version), InputTag("mlflow.data.context", context)]
    c.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags)])


def log_table(run_id: str, rows: list[dict[str, str]], artifact_file: str) -> None:
    import pandas as pd

    client().log_table(run_id, pd.DataFrame(rows), artifact_file)


def get_run(run_id: str):
    from mlflow.exceptions import MlflowException

    from trainer.errors import SettingsError

    try:
        return client().get_run(run_id)
    except MlflowException:
        raise SettingsError(f"run {run_id}: not found at {redact(state.tracking_uri())}") from None


def latest_runs(experiment_name: str, limit: int) -> list:
    c = client()
    experiment = c.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    return list(c.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit))


def create_run(experiment_name: str, run_name: str, tags: dict[str, str]) -> str:
    c = client()
    run = c.create_run(
        ensure_experiment(experiment_name),
        run_name=run_name,
        tags={k: redact(str(v)) for k, v in {"mlflow.runName": run_name, **tags}.items()},
    )
    return run.info.run_id
