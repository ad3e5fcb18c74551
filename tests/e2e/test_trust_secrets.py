"""No secret reaches a file, a database or the terminal: a real `llm-trainer run` with sentinel secrets
in the environment and a password in MLFLOW_TRACKING_URI, against a real `mlflow server` (its own
process group), then every byte it wrote is searched: the state folder (Prefect's database, the run
folders, the backups, the checkpoints' and adapters' settings files), the output folder (with the
data-parallel launch spec), the folder the commands ran in, the MLflow server's store and artifacts,
and everything the commands printed.

Credentials pasted into setting values are refused, one line that says how to pass them instead, and
the refusal prints neither secret.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.servers import start_mlflow_server, stop_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLI = [str(Path(sys.executable).with_name("llm-trainer"))]
ENV_SECRETS = {
    "HF_TOKEN": "hf_SENTINELq7Wm2Xc9Lp4Rt6Yz8Bn1Vd3Kf5Hg",
    "AWS_SECRET_ACCESS_KEY": "awsSENTINEL/4b2d9e8f7a6c+5b4a3d2e1f0",
}
TRACKING_PASSWORD = "pwSENTINEL3f9a2c71"
PASTED_TOKEN = "hf_SENTINELpastedAbCdEfGhIjKlMnOpQrStUv"
URL_PASSWORD = "urlSENTINEL8d1e4b"


@pytest.fixture
def mlflow_server(tmp_path):
    root = tmp_path / "mlflow-server"
    service, port = start_mlflow_server(root)
    try:
        yield root, port
    finally:
        stop_service(service)


def _cli(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_no_secret_reaches_any_file_database_or_terminal(tmp_path, mlflow_server, tiny_model_dir):
    server_root, port = mlflow_server
    home = tmp_path / "state"
    shutil.copytree(tiny_model_dir, home / "models" / tiny_model_dir.name)
    env = {
        **os.environ,
        **ENV_SECRETS,
        "LLM_TRAINER_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"http://llmuser:{TRACKING_PASSWORD}@127.0.0.1:{port}",
        "COLUMNS": "200",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",  # a busy machine starts it slowly
    }
    env.pop("PREFECT_HOME", None)  # Prefect's database in the state folder, where it is searched
    cwd = tmp_path / "cwd"  # the folder the commands run in is searched too (MLflow's ./mlruns default)
    cwd.mkdir()

    refused = [
        _cli(["run", "--set", f"element_name=support bot {PASTED_TOKEN}"], env, cwd, 120),
        _cli(["run", "--set", f"artifact_backup_save_path=memory://user:{URL_PASSWORD}@bucket/bk"], env, cwd, 120),
    ]
    for result, setting in zip(refused, ("element_name", "artifact_backup_save_path"), strict=True):
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {setting}: holds ")
        assert "environment" in lines[0] and "Prefect Secret block" in lines[0]

    out = tmp_path / "outputs"
    # Two training processes: the data-parallel launch spec (distributed/spec.json) and the workers'
    # output (their environment holds the tracking URI) are searched as well.
    run = _cli(
        ["run", "--set", "max_steps=2", "--set", "save_every_n_iterations=1", "--set", "num_sample_generations=1",
         "--set", "max_new_tokens=4", "--set", "eval_fraction=0.03", "--set", f"output_dir={out}",
         "--set", "num_processes=2"],
        env,
        cwd,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Open the MLflow UI" in run.stdout and f"open http://***@127.0.0.1:{port}" in run.stdout

    sentinels = [*ENV_SECRETS.values(), TRACKING_PASSWORD, PASTED_TOKEN, URL_PASSWORD]
    terminal = "".join(r.stdout + r.stderr for r in [*refused, run])
    for secret in sentinels:
        assert secret not in terminal, f"{secret} was printed"
    searched = {}
    for folder in (home, out, server_root, cwd):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                content = path.read_bytes()
                searched[path] = content
                for secret in sentinels:
                    assert secret.encode() not in content, f"{secret} leaked into {path}"
    # What must have been searched: Prefect's database (flow-run parameters, logs, artifacts), the
    # MLflow server's store and artifacts, settings files in checkpoints, adapters and the backup.
    names = {p.name for p in searched}
    expected = {"prefect.db", "mlflow.db", "llm_trainer_settings.yaml", "settings.yaml", "MANIFEST.json", "spec.json"}
    assert expected <= names
    assert any(server_root / "artifacts" in p.parents for p in searched) and len(searched) > 100
    prefect_db = home / "prefect" / "prefect.db"
    assert b"max_steps" in searched[prefect_db]  # the flow-run parameters are in it
