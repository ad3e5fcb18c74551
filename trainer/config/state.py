"""Where the pipeline keeps its local state, and the environment defaults that go with it.

Everything a default run writes lives under one folder (`.llm-trainer/` in the working directory,
or `$LLM_TRAINER_HOME`): the MLflow sqlite store and artifacts, Prefect's home, run outputs,
backups and the locally built demo model. `MLFLOW_TRACKING_URI` and `PREFECT_API_URL`, when set,
win over the local defaults so the same command can point at real servers.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # trainer/config/state.py -> the repository


def state_dir() -> Path:
    return Path(os.environ.get("LLM_TRAINER_HOME", ".llm-trainer")).resolve()


def mlflow_db_path() -> Path:
    return state_dir() / "mlflow.db"


def mlflow_artifacts_dir() -> Path:
    return state_dir() / "mlartifacts"


def local_tracking_uri() -> str:
    return f"sqlite:///{mlflow_db_path()}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri()


def runs_dir() -> Path:
    return state_dir() / "runs"


def backups_dir() -> Path:
    return state_dir() / "backups"


def models_dir() -> Path:
    return state_dir() / "models"


# Telemetry of the tools we drive is off unless the user turns it on: a training pipeline on a
# customer's data should not phone home, and Prefect's telemetry on a fresh home also logs
# "database is locked" noise.
QUIET_DEFAULTS = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "False",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # Our own logger's records show up in the Prefect UI beside the task logs.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "llm_trainer",
    # Prefect's temporary local server takes 8-14 s to start on 2 idle cores and gives up after 20 s
    # by default, which a busy machine exceeds (a traceback, no run). Waiting longer costs nothing.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def apply_environment_defaults() -> None:
    """Set quiet defaults and a local Prefect home; call before importing prefect or mlflow."""
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("PREFECT_API_URL"):
        # A local run keeps Prefect's database with the rest of the state, not in ~/.prefect.
        os.environ.setdefault("PREFECT_HOME", str(state_dir() / "prefect"))
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
