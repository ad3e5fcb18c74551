"""SIGTERM stops everything a run started, at any stage, and the state reads true afterwards.

One state folder, four real `llm-trainer run` processes (the session's Prefect server, a sqlite
MLflow store): SIGTERM during data-parallel training (torchrun and two workers), during
registration (the version exists, not yet tagged), during the backup's copy; then a normal run.
After each signal: exit code 143 within a bound, no process the run started is left, the MLflow run
reads KILLED, `champion` is not moved and no half backup is left looking whole. The last run
succeeds and becomes champion with a verified backup.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.e2e.servers import marked_processes
from tests.faults import inject as faults

pytestmark = pytest.mark.slow

CLI = [str(Path(sys.executable).with_name("llm-trainer"))]
MARK = "LLM_TRAINER_TEST_SIGNALS"  # carried by every process a run starts: found if one is left
EXPERIMENT, MODEL = "trust-signals", "trust-signals-model"
QUICK = ["max_steps=2", "save_every_n_iterations=1", "num_sample_generations=0", "eval_generation_rows=0",
         "eval_fraction=0.03", f"experiment_name={EXPERIMENT}", f"registered_model_name={MODEL}"]  # fmt: skip


def _args(*pairs: str) -> list[str]:
    return ["run", *(arg for pair in (*QUICK, *pairs) for arg in ("--set", pair))]


def _env(home: Path, prefect_env: dict[str, str], mark: str) -> dict[str, str]:
    env = {**os.environ, **prefect_env, "LLM_TRAINER_HOME": str(home), MARK: mark, "COLUMNS": "200"}
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(key, None)  # the state folder's own store
    return env


def _store(home: Path) -> MlflowClient:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def _champion(home: Path) -> str | None:
    try:
        return _store(home).get_model_version_by_alias(MODEL, "champion").version
    except Exception:  # no such model or alias yet
        return None


def _terminated_run(home: Path, args: list[str], env: dict[str, str], log: Path, *, when=None) -> int:
    """Start a run; send it SIGTERM once `when()` is true (or let a fault in `env` send it); return
    its exit code, after checking it ended within a bound and left no process behind."""
    with log.open("w") as out:
        run = subprocess.Popen([*CLI, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if when is not None:
            deadline = time.monotonic() + 900
            while not when() and run.poll() is None:
                assert time.monotonic() < deadline, f"the moment to signal never came: {log.read_text()[-3000:]}"
                time.sleep(0.3)
            signalled = time.monotonic()
            run.send_signal(signal.SIGTERM)
            code = run.wait(timeout=120)
            took = time.monotonic() - signalled
        else:
            code = run.wait(timeout=900)
            took = 0.0
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    left = marked_processes(env[MARK], MARK)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left running after SIGTERM: {left}\n{log.read_text()[-3000:]}"
    assert took < 90, f"SIGTERM took {took:.0f} s to end the run"
    return code


def _latest_run(home: Path):
    store = _store(home)
    experiment = store.get_experiment_by_name(EXPERIMENT)
    return store.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]


def test_sigterm_at_any_stage_stops_everything_and_the_state_reads_true(tmp_path, tiny_model_dir, prefect_env):
    home = tmp_path / "state"
    shutil.copytree(tiny_model_dir, home / "models" / tiny_model_dir.name)
    logs = tmp_path / "logs"
    logs.mkdir()

    # 1. Data-parallel training: torchrun and its two workers run in their own process group.
    env = _env(home, prefect_env, uuid.uuid4().hex)
    code = _terminated_run(
        home,
        _args("num_processes=2", "max_steps=60"),
        env,
        logs / "training.log",
        when=lambda: any(home.glob("runs/*/checkpoints/checkpoint-1")),
    )
    assert code == 143, (logs / "training.log").read_text()[-3000:]
    assert _latest_run(home).info.status == "KILLED"
    assert _champion(home) is None

    # 2. Registration: the version is created, its tags are not written yet.
    env = faults.env(
        _env(home, prefect_env, uuid.uuid4().hex), signal_name="TERM",
        signal_in="trainer.registry.versions:set_version_tags",
    )  # fmt: skip
    assert _terminated_run(home, _args(), env, logs / "registration.log") == 143, (
        logs / "registration.log"
    ).read_text()[-3000:]
    assert _latest_run(home).info.status == "KILLED"
    assert _champion(home) is None

    # 3. The backup's copy: halfway through its files.
    env = faults.env(
        _env(home, prefect_env, uuid.uuid4().hex), signal_name="TERM", signal_in="trainer.storage.backup:sha256_file",
        signal_call=2,
    )  # fmt: skip
    assert _terminated_run(home, _args(), env, logs / "backup.log") == 143, (logs / "backup.log").read_text()[-3000:]
    killed = _latest_run(home)
    assert killed.info.status == "KILLED"
    assert _champion(home) is None
    assert not list((home / "backups").rglob("MANIFEST.json")), "a half backup was left looking whole"

    # 4. The next run goes through and is champion, with a backup that verifies.
    env = _env(home, prefect_env, uuid.uuid4().hex)
    assert _terminated_run(home, _args(), env, logs / "normal.log") == 0, (logs / "normal.log").read_text()[-3000:]
    finished = _latest_run(home)
    assert finished.info.status == "FINISHED"
    version = _store(home).get_model_version(MODEL, _champion(home))
    assert version.run_id == finished.info.run_id
    [manifest] = (home / "backups").rglob("MANIFEST.json")
    verify = subprocess.run(
        [*CLI, "verify", str(manifest.parent)], env=env, capture_output=True, text=True, timeout=300
    )
    assert verify.returncode == 0, verify.stderr
