"""Data-parallel training (torchrun + the Trainer's DDP, gloo on the CPU) on the tiny model: through
the whole Prefect flow with a crash and a retry, across two "nodes" on the loopback, and a worker's
bad-input error reaching the caller as such."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from tests.conftest import DEMO_DATA, REPO
from tests.faults import inject as faults
from trainer.config import state
from trainer.config.loading import load_settings
from trainer.data.contracts.validate import validate_dataset
from trainer.train.distributed import launch
from trainer.train.job import TrainJob

pytestmark = pytest.mark.slow  # trains the tiny model or runs the flow


def _rows(limit: int = 48):
    _, examples = validate_dataset(DEMO_DATA)
    return examples[:limit]


def _checkpoint_files(checkpoint: Path) -> set[str]:
    return {p.name for p in checkpoint.iterdir()}


def test_flow_trains_with_two_processes_and_a_retry(prefect_server, tiny_model_dir, monkeypatch):
    from flows.pipeline import llm_trainer

    settings = load_settings(
        "demo",
        None,
        [
            "num_processes=2",
            "max_steps=4",
            "save_every_n_iterations=2",
            "batch_size=4",
            "element_name=DDP Test",
            "num_sample_generations=1",
            "eval_fraction=0.1",
        ],
    )
    # Both ranks raise at step 3 (after checkpoint-2): torchrun fails, Prefect retries the task,
    # and the retry resumes the 2-process run from checkpoint-2.
    # torchrun's workers inherit this environment: tests/faults' sitecustomize patches them.
    with monkeypatch.context() as patch:
        for key, value in faults.env(dict(os.environ), crash_at=3, mode="raise").items():
            if os.environ.get(key) != value:
                patch.setenv(key, value)
        summary = llm_trainer(settings)

    client = mlflow.MlflowClient(state.tracking_uri())
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.tags["training_processes"] == "2"
    assert run.data.params["num_processes"] == "2"
    assert run.data.tags["resumed_from"].endswith("checkpoint-2")
    output_dir = Path(run.data.tags["output_dir"])
    assert (output_dir / ".crashed-at-step-3").exists()

    # One MLflow run, each iteration's loss logged once (by rank 0), none lost across the retry.
    runs = client.search_runs([run.info.experiment_id], f"tags.mlflow.runName = '{run.info.run_name}'")
    assert len(runs) == 1
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert sorted(steps) == [1, 2, 3, 4]
    assert client.get_metric_history(run.info.run_id, "tokens_per_second")

    # Each checkpoint written once, sealed once, with both ranks' RNG states; no half-written leftovers.
    checkpoints = sorted((output_dir / "checkpoints").glob("checkpoint-*"))
    assert [p.name for p in checkpoints] == ["checkpoint-2", "checkpoint-4"]
    for checkpoint in checkpoints:
        files = _checkpoint_files(checkpoint)
        assert {"rng_state_0.pth", "rng_state_1.pth", "adapter_model.safetensors", "optimizer.pt"} <= files
        assert "rng_state.pth" not in files
        assert json.loads((checkpoint / "llm_trainer_checkpoint.json").read_text())["processes"] == 2
    assert not any((output_dir / "checkpoints" / ".staging").glob("checkpoint-*"))
    # The model was evaluated and registered from rank 0's adapter.
    assert summary.model_version
    assert (output_dir / "adapter" / "adapter_model.safetensors").is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_nodes_meet_on_the_loopback(tiny_model_dir, tmp_path, monkeypatch):
    # Two "nodes" share this machine's cores: one thread each, or OpenMP oversubscription makes
    # every step seconds long (on real nodes each has its own cores).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings = load_settings(
        "demo",
        None,
        [
            "num_nodes=2",
            "num_processes=1",
            f"rdzv_endpoint=127.0.0.1:{_free_port()}",
            "max_steps=3",
            "save_every_n_iterations=3",
            "batch_size=4",
        ],
    )
    spec = tmp_path / "distributed" / "spec.json"
    # Node 1 waits for node 0's spec, as an operator's `llm-trainer join` on another machine would.
    node1 = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "join", str(spec), "--node-rank", "1", "--wait", "120"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    try:
        lines: list[str] = []
        result = launch(TrainJob(settings, tiny_model_dir, _rows(), tmp_path), log_line=lines.append)
        output, _ = node1.communicate(timeout=120)
    finally:
        node1.kill()
    assert node1.returncode == 0, output[-2000:]
    assert any("llm-trainer join" in line and "--node-rank 1" in line for line in lines)  # node 0 says what to run
    assert result.global_step == 3
    assert result.runtime["processes"] == "2"
    assert _checkpoint_files(tmp_path / "checkpoints" / "checkpoint-3") >= {"rng_state_0.pth", "rng_state_1.pth"}
    # Rank 0 says whether it tokenized the rows or mapped those the other process prepared under the lock.
    assert any("Training rows prepared:" in line or "Training rows reused" in line for line in lines)


def test_a_worker_value_error_is_not_a_crash(tiny_model_dir, tmp_path):
    settings = load_settings("demo", None, ["num_processes=2", "max_seq_length=16", "max_steps=2"])
    # Every row is longer than 16 tokens: each worker raises ValueError, which must reach the task as
    # a ValueError (not retried), not as a generic crash.
    with pytest.raises(ValueError, match="max_seq_length"):
        launch(TrainJob(settings, tiny_model_dir, _rows(8), tmp_path))
    assert json.loads((tmp_path / "distributed" / "error.json").read_text())["kind"] == "pipeline"
