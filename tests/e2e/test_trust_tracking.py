"""A tracking server that dies mid-run is a bounded wait, then one line naming it; the next run recovers.

A real `mlflow server` on 127.0.0.1 (sqlite store, served artifacts) is SIGKILLed by the training
process at step 3 of 8 (tests/faults). Training goes on to its last step (its metrics are kept, not
a reason to stop), the run ends within the client's wait budget with one `error:` line naming the
server, and no traceback; the trained adapter and checkpoints stay on disk. The server is started
again on the same store: the next run closes the dead run as KILLED, trains, and is champion with a
verified backup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.e2e.servers import start_mlflow_server, stop_service
from tests.faults import inject as faults

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLI = [str(Path(sys.executable).with_name("llm-trainer"))]
EXPERIMENT, MODEL = "trust-tracking", "trust-tracking-model"
QUICK = ["num_sample_generations=0", "eval_generation_rows=0", "eval_fraction=0.03",
         f"experiment_name={EXPERIMENT}", f"registered_model_name={MODEL}"]  # fmt: skip
# The documented budget (trainer/registry/client.py: WAIT_BUDGET) is ~30 s per call for a server
# that refuses connections; the end of training makes two such calls (the last metrics, then the
# run's tags). The bound leaves room for a loaded machine.
BOUND_AFTER_DEATH = 240


def _args(*pairs: str) -> list[str]:
    return ["run", *(arg for pair in (*QUICK, *pairs) for arg in ("--set", pair))]


@pytest.mark.timeout(1200)
def test_a_tracking_server_that_dies_mid_training_is_a_bounded_wait_and_the_next_run_recovers(
    tmp_path, tiny_model_dir, prefect_env
):
    root = tmp_path / "mlflow-server"
    server, port = start_mlflow_server(root)
    home = tmp_path / "state"
    shutil.copytree(tiny_model_dir, home / "models" / tiny_model_dir.name)
    env = {**os.environ, **prefect_env, "LLM_TRAINER_HOME": str(home), "COLUMNS": "200",
           "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}  # fmt: skip
    for key in ("MLFLOW_REGISTRY_URI", *(k for k in os.environ if k.startswith("MLFLOW_HTTP_REQUEST_"))):
        env.pop(key, None)  # the product's own wait budget is under test
    try:
        dying = subprocess.Popen(
            [*CLI, *_args("max_steps=8", "save_every_n_iterations=2")],
            env=faults.env(env, signal_name="KILL", signal_at=3, signal_group=server.proc.pid),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        died = None
        while dying.poll() is None:
            if died is None and server.proc.poll() is not None:
                died = time.monotonic()
            time.sleep(0.2)
        stdout, stderr = dying.communicate()
        ended = time.monotonic()
    finally:
        stop_service(server)
    output = stdout + stderr
    assert died is not None, f"the fault never killed the server:\n{output[-4000:]}"
    assert dying.returncode == 1, output[-4000:]
    assert ended - died < BOUND_AFTER_DEATH, f"the run waited {ended - died:.0f} s for a dead server"
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the MLflow server did not answer at http://127.0.0.1:{port} ("), last
    assert "Traceback" not in output, output[-4000:]
    # Training was not thrown away for its metrics: all 8 steps ran and the adapter is on disk.
    [adapter] = home.glob("runs/*/adapter/adapter_model.safetensors")
    assert (adapter.parents[1] / "checkpoints" / "checkpoint-8").is_dir()

    server, port = start_mlflow_server(root, port)
    try:
        recovered = subprocess.run([*CLI, *_args("max_steps=2")], env=env, capture_output=True, text=True, timeout=900)
        assert recovered.returncode == 0, recovered.stderr[-4000:]
        store = MlflowClient(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
        experiment = store.get_experiment_by_name(EXPERIMENT)
        first, second = store.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
        assert (first.info.status, second.info.status) == ("KILLED", "FINISHED")
        champion = store.get_model_version_by_alias(MODEL, "champion")
        assert champion.run_id == second.info.run_id
        [manifest] = home.glob("backups/**/MANIFEST.json")
        verify = subprocess.run([*CLI, "verify", str(manifest.parent)], env=env, capture_output=True, text=True)
        assert verify.returncode == 0, verify.stderr
    finally:
        stop_service(server)
    shutil.rmtree(root, ignore_errors=True)
