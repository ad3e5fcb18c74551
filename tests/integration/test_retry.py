"""A transient crash in the train task: Prefect retries it, and the retry resumes from the flow
run's latest checkpoint and ends with the same adapter as an uninterrupted run."""

from pathlib import Path

import mlflow
import pytest
from safetensors.torch import load_file

from tests.conftest import DEMO_DATA
from tests.faults import inject as faults
from trainer.config import state
from trainer.config.loading import load_settings
from trainer.data.contracts.validate import validate_dataset
from trainer.data.split import split_examples
from trainer.model.tiny import ensure_tiny_model
from trainer.train.job import TrainJob
from trainer.train.loop import train

pytestmark = pytest.mark.slow  # trains the tiny model or runs the flow

SETS = [
    "max_steps=8",
    "save_every_n_iterations=3",
    "batch_size=4",
    "eval_fraction=0.1",
    "element_name=Retry Test",
    "num_sample_generations=1",
]


def test_train_task_retry_resumes_from_checkpoint(prefect_server, tiny_model_dir, tmp_path, monkeypatch, single_thread):
    from flows.pipeline import llm_trainer

    settings = load_settings("demo", None, SETS)
    with monkeypatch.context() as patch:
        faults.install(patch, crash_at=5, mode="raise")
        summary = llm_trainer(settings)

    client = mlflow.MlflowClient(state.tracking_uri())
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.tags["resumed_from"].endswith("checkpoint-3")  # the retry continued, not restarted
    output_dir = Path(run.data.tags["output_dir"])
    assert (output_dir / ".crashed-at-step-5").exists()  # the crash did happen
    # Steps 4-5 ran twice (before the crash and after resuming from 3); each is logged once.
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss"))
    assert steps == list(range(1, 9))

    # The same training without a crash, straight through.
    _, examples = validate_dataset(DEMO_DATA)
    train_rows, _ = split_examples(examples, settings.eval_fraction, settings.random_seed)
    reference_dir = tmp_path / "reference"
    job = TrainJob(
        settings.model_copy(update={"output_dir": reference_dir}), ensure_tiny_model(), train_rows, reference_dir
    )
    train(job, show_progress=False)
    expected = load_file(reference_dir / "adapter" / "adapter_model.safetensors")
    retried = load_file(output_dir / "adapter" / "adapter_model.safetensors")
    assert max((expected[k] - retried[k]).abs().max().item() for k in expected) <= 1e-6
