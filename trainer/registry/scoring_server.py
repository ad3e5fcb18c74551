"""Serving a registered version over REST with MLflow's own scoring server (`/ping`, `/invocations`).

`mlflow models serve --env-manager local` starts `uvicorn` by name through a shell, so it fails
(exit 127) unless the virtualenv's `bin` is on PATH; here the server is started from this Python's
own environment, with that folder first on PATH and the tracking URI of this process, in a process
group of its own so that stopping it stops its children too (MLflow forks bash, then uvicorn).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from trainer.config import state
from trainer.errors import SettingsError
from trainer.processes import stop_group
from trainer.redact import redact
from trainer.registry.versions import get_alias_version, model_version


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    uri: str  # models:/NAME/VERSION: pinned, so a moving alias never swaps the model under the server
    alias: str | None


def resolve_served_model(name: str, alias: str | None = "champion", version: str | None = None) -> ServedModel:
    """The version to serve: `version`, or the one `alias` points to. SettingsError, one line, if none."""
    if version is not None:
        model_version(name, version)  # SettingsError naming the model when it is not there
        return ServedModel(name, str(version), f"models:/{name}/{version}", None)
    found = get_alias_version(name, alias or "champion")
    if found is None:
        raise SettingsError(
            f"{name}@{alias}: no such registered model or alias at {redact(state.tracking_uri())}; "
            "train one first (`llm-trainer run`) or pass --version N"
        )
    return ServedModel(name, found, f"models:/{name}/{found}", alias)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def server_command(uri: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
            "--host", host, "--port", str(port)]  # fmt: skip


def start_server(model: ServedModel, host: str, port: int, log_path: Path | None = None) -> subprocess.Popen:
    """Start the scoring server in its own process group; its output goes to `log_path` (or ours)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MLFLOW_TRACKING_URI"] = state.tracking_uri()
    output = open(log_path, "w", encoding="utf-8") if log_path is not None else None  # noqa: SIM115 - the child holds it
    try:
        return subprocess.Popen(
            server_command(model.uri, host, port), env=env, stdout=output, stderr=subprocess.STDOUT if output else None,
            start_new_session=True,
        )  # fmt: skip
    finally:
        if output is not None:
            output.close()


def wait_until_ready(process: subprocess.Popen, host: str, port: int, timeout: float = 300) -> bool:
    """Poll /ping until the server answers 200 (True), the process exits, or `timeout` passes (False)."""
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/ping"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    return False


def stop_server(process: subprocess.Popen, grace_seconds: float = 10) -> None:
    """SIGTERM the server's whole process group, then SIGKILL what is left after `grace_seconds`."""
    stop_group(process, grace_seconds)
