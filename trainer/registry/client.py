"""The MLflow client, pointed at this process's tracking and registry URIs, and the experiment.

Calls name their run explicitly (MlflowClient with a run id) instead of relying on MLflow's
active-run state, so a stage can run in any thread or process and a retried stage finds the same
run. Everything under `trainer/registry/` goes through `client()`.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from trainer.config import state
from trainer.errors import TrackingUnavailableError
from trainer.redact import redact

log = logging.getLogger("llm_trainer.registry")

# Database stores whose schema this process has created or found (under the file lock, once).
_READY: set[str] = set()
# Database schemes for which MLflow's default artifact root is ./mlruns of the current directory.
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


# How long one call waits for a tracking server that does not answer; set for MLflow's client once,
# the user's own MLFLOW_HTTP_REQUEST_* values win. urllib3 retries 4 times after backoffs of 0, 4, 8
# and 16 s (+ up to 1 s jitter each): a server that refuses connections (it died) costs ~30 s, one
# that accepts and never answers 5 x 20 s + 28 s ~ 2 min. MLflow's own default is 7 retries of up to
# 120 s each, ~4 min per call, and each task retried that again: a dead server held a run for 10+ min.
WAIT_BUDGET = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


def registry_uri() -> str:
    return os.environ.get("MLFLOW_REGISTRY_URI") or state.tracking_uri()


def mlflow_module():
    import mlflow

    # MLflow prints "View run ... at: <tracking URI>" when a run ends, credentials of the URI
    # included; our own summary prints the (redacted) location instead.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    for name, value in WAIT_BUDGET.items():
        os.environ.setdefault(name, value)
    mlflow.set_tracking_uri(state.tracking_uri())
    mlflow.set_registry_uri(registry_uri())
    _create_store_once(state.tracking_uri())
    return mlflow


def client():
    from mlflow import MlflowClient

    mlflow_module()
    return MlflowClient()


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///path` store (relative, or absolute with four slashes), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def _create_store_once(uri: str) -> None:
    """The first use of a sqlite store creates its schema (MLflow runs its migrations); two processes
    doing it at once fail (`table _alembic_tmp_experiments already exists`). A file lock beside the
    database lets one create it while the other waits, then finds it made."""
    path = sqlite_path(uri)
    if path is None or uri in _READY:
        return
    from filelock import FileLock
    from mlflow import MlflowClient

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock", timeout=600):
        c = MlflowClient(uri, registry_uri())
        c.search_experiments(max_results=1)  # creates the tracking tables
        c.search_registered_models(max_results=1)  # and the registry's, when it is the same database
    _READY.add(uri)


def default_artifact_root(uri: str) -> Path | None:
    """Where a new experiment's artifacts go when MLflow would pick `./mlruns` of whatever folder the
    command ran in (a database store): beside the sqlite file, or in the state folder. None: the
    tracking server (or file store) decides."""
    if uri == state.local_tracking_uri():
        return state.mlflow_artifacts_dir()
    path = sqlite_path(uri)
    if path is not None:
        return path.resolve().parent / "mlartifacts"
    if uri.split(":", 1)[0].split("+", 1)[0] in _DATABASE_SCHEMES:
        return state.mlflow_artifacts_dir()
    return None


def ensure_experiment(name: str) -> str:
    c = client()
    experiment = c.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # Not "is MLFLOW_TRACKING_URI unset?": mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, so after
    # the first call that would say "remote" and artifacts would land in ./mlruns of the cwd.
    root = default_artifact_root(state.tracking_uri())
    artifact_location = (root / name).resolve().as_uri() if root is not None else None
    try:
        experiment_id = c.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # created concurrently by another run
        experiment = c.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id
    where = c.get_experiment(experiment_id).artifact_location
    log.info("Created MLflow experiment %s; its artifacts go to %s", name, redact(where))
    return experiment_id


def unreachable(exc: BaseException) -> TrackingUnavailableError | None:
    """The one-line error for a failure that says the tracking (or registry) server did not answer
    at all, after the client's retries; None for anything else (an answer, even an error, is not
    this). MLflow raises those as `API request to URL failed with ...` (a refused or reset
    connection, a timeout, too many 5xx answers); a wrapped one is found through the chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TrackingUnavailableError):
            return current
        message = str(current)
        if type(current).__name__ == "MlflowException" and message.startswith("API request to "):
            url = urlsplit(message[len("API request to ") :].split(" ", 1)[0])
            server = redact(f"{url.scheme}://{url.netloc}")
            reason = _short_reason(message)
            return TrackingUnavailableError(
                f"the MLflow server did not answer at {server} ({reason}, after the client's retries: "
                "MLFLOW_HTTP_REQUEST_* variables); start it again or point MLFLOW_TRACKING_URI at one that runs, "
                "and run again"
            )
        current = current.__cause__ or current.__context__
    return None


def _short_reason(message: str) -> str:
    lowered = message.lower()
    for words, reason in (
        ("connection refused", "connection refused"),
        ("timeout", "timed out"),
        ("timed out", "timed out"),
        ("error responses", "error answers"),
        ("name or service not known", "unknown host"),
        ("connection reset", "connection reset"),
        ("remotedisconnected", "connection closed"),
    ):
        if words in lowered:
            return reason
    return "no answer"


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=state.PROJECT_ROOT, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def ui_command() -> str:
    """How to open the MLflow UI on this store (redacted: a tracking URI may carry a password)."""
    uri = state.tracking_uri()
    if uri.startswith("sqlite:"):
        return redact(f"mlflow ui --backend-store-uri {uri} --port 5000")
    return redact(f"open {uri}")
