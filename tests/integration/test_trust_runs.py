"""MLflow runs tell the truth about their flow runs, and the state folder takes concurrent first use:

- a `llm-trainer run` whose process group is SIGKILLed mid-training reads KILLED once the next run
  starts (not FINISHED, as runs ended by `with mlflow.start_run(...)` blocks did);
- two `llm-trainer run` started at once on a fresh state folder (not even the tiny model) both succeed;
- with MLFLOW_TRACKING_URI=sqlite:///path, artifacts go beside that store, not to ./mlruns.

Real CLI processes, real Prefect (each CLI's temporary server), real MLflow stores.
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

from tests.faults import inject as faults
from trainer.config.loading import load_settings

CLI = [str(Path(sys.executable).with_name("llm-trainer"))]
QUICK = ["max_steps=1", "save_every_n_iterations=1", "num_sample_generations=0", "eval_generation_rows=0",
         "eval_fraction=0.03"]  # fmt: skip


def _sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


def _fresh_home(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A new state folder (no MLflow store, no Prefect database) that already has the tiny model."""
    home = tmp_path / "state"
    shutil.copytree(tiny_model_dir, home / "models" / tiny_model_dir.name)
    return home


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "LLM_TRAINER_HOME": str(home), "COLUMNS": "200"}
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "600"  # a busy machine starts it slowly
    # Prefect's database goes in the fresh state folder too; and mlflow.set_tracking_uri() in an earlier
    # test of this session exports MLFLOW_TRACKING_URI, which would send these runs to the session's store.
    for key in (
        "PREFECT_HOME",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
    ):
        env.pop(key, None)
    return {**env, **extra}


def _store(home: Path) -> MlflowClient:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(uri, uri)


@pytest.mark.slow
def test_a_sigkilled_run_reads_killed_once_the_next_run_starts(tmp_path, tiny_model_dir, prefect_env):
    home = _fresh_home(tmp_path, tiny_model_dir)
    experiment = "trust-kill"
    log = (tmp_path / "killed.log").open("w")
    # It kills itself at step 6 if the test has not killed its process group by then.
    killed = subprocess.Popen(
        [*CLI, "run", *_sets("max_steps=40", "save_every_n_iterations=2", f"experiment_name={experiment}")],
        env=faults.env(_env(home, **prefect_env), crash_at=6, mode="kill"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 1200
    while not list((home / "runs").glob("*/checkpoints/checkpoint-2")) and killed.poll() is None:
        assert time.monotonic() < deadline, "training never reached its first checkpoint"
        time.sleep(0.5)
    os.killpg(killed.pid, signal.SIGKILL)  # the CLI, its Prefect server, everything it started
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    [run] = _store(home).search_runs([_store(home).get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "RUNNING"  # nothing ended it on the way (no FINISHED from a with-block)

    second = subprocess.run(
        [*CLI, "run", *_sets(*QUICK, f"experiment_name={experiment}")],
        env=_env(home, **prefect_env),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    closed = _store(home).get_run(run.info.run_id)
    assert closed.info.status == "KILLED"
    assert f"its process {run.data.tags['llm_trainer.pid']} on " in closed.data.tags["llm_trainer.end_reason"]
    assert "closed as KILLED" in second.stderr + second.stdout


@pytest.mark.slow
def test_two_first_runs_on_a_fresh_state_folder_both_succeed(tmp_path):
    # Really fresh: no MLflow store, no Prefect database, no tiny model (one run builds it, the other waits).
    home = tmp_path / "state"
    runs = [
        subprocess.Popen(
            [*CLI, "run", *_sets(*QUICK)], env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=2400)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n---\n".join(o[-3000:] for o in outputs)
    assert all("MLflow artifacts" in o and str(home / "mlartifacts") in o for o in outputs)
    versions = _store(home).search_model_versions("name = 'llm-trainer-demo'")
    assert sorted(int(v.version) for v in versions) == [1, 2]


def test_a_sqlite_store_keeps_artifacts_beside_it_not_in_the_current_folder(tmp_path, monkeypatch):
    from trainer import registry

    store, cwd = tmp_path / "store" / "tracking.db", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    settings = load_settings("demo", None, ["experiment_name=trust-sqlite"])
    run_id = registry.get_or_create_run(settings, str(uuid.uuid4()), "sqlite-run")
    registry.log_text(run_id, "where do I land?", "report/where.txt")
    beside = store.parent / "mlartifacts" / "trust-sqlite"
    assert registry.artifact_location(run_id).startswith(beside.as_uri())
    assert [p.read_text() for p in beside.rglob("where.txt")] == ["where do I land?"]
    assert not (cwd / "mlruns").exists()
    registry.finish_run(run_id)


def test_a_run_held_elsewhere_is_closed_once_prefect_says_its_flow_run_ended(prefect_server):
    """A deployment's worker was lost: its run's process cannot be checked from here, so Prefect's
    state of the flow run decides (FAILED for failed, KILLED for crashed); one still running stays."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed, Running

    from tasks.lifecycle import close_orphaned_runs
    from trainer import registry
    from trainer.registry.runs import HOST_TAG

    @flow(name="trust-elsewhere")
    def lost() -> None:
        raise ValueError("the worker's machine went away")

    experiment = f"trust-elsewhere-{uuid.uuid4().hex[:6]}"
    settings = load_settings("demo", None, [f"experiment_name={experiment}"])
    failed, crashed = (str(lost(return_state=True).state_details.flow_run_id) for _ in range(2))
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(uuid.UUID(crashed), Crashed(message="worker lost"), force=True)
        running = str(client.create_flow_run(lost, state=Running()).id)  # still running over there
    runs = {key: registry.get_or_create_run(settings, key, f"run-{key[:8]}") for key in (failed, crashed, running)}
    for run_id in runs.values():  # held by a process on another machine
        registry.set_tags(run_id, {HOST_TAG: "another-machine"})
    close_orphaned_runs(experiment)
    store = MlflowClient(registry.client().tracking_uri)
    status = {key: store.get_run(run_id).info.status for key, run_id in runs.items()}
    assert status == {failed: "FAILED", crashed: "KILLED", running: "RUNNING"}
    reason = store.get_run(runs[crashed]).data.tags["llm_trainer.end_reason"]
    assert reason == "closed by a later start: its Prefect flow run ended (KILLED) without closing it"
    for run_id in runs.values():
        registry.finish_run(run_id)
