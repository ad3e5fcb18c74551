"""The whole `llm-trainer` flow on the demo settings: real Prefect, MLflow (sqlite), GX, training."""

import json
import statistics
import subprocess

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import REPO
from trainer.config import state
from trainer.config.loading import load_settings
from trainer.storage.backup import verify

pytestmark = pytest.mark.slow  # trains the tiny model or runs the flow


@pytest.fixture(scope="module")
def demo_run(prefect_server, tiny_model_dir):
    from flows.pipeline import llm_trainer

    settings = load_settings("demo", None, [])
    summary = llm_trainer(settings)
    mlflow.set_tracking_uri(state.tracking_uri())
    return settings, summary, MlflowClient(state.tracking_uri())


def test_run_records_params_tags_metrics_and_lineage(demo_run):
    settings, summary, client = demo_run
    run = client.get_run(summary.mlflow_run_id)
    assert run.info.status == "FINISHED"  # the flow returned: its run is closed
    # Every setting, as given, and nothing else: the run can be compared and re-run from its params.
    expected = {
        key: "" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        for key, value in settings.model_dump(mode="json").items()
    }
    assert run.data.params == expected
    assert expected["learning_rate"] == "0.003" and expected["quantization_rank"] == "4"
    tags = run.data.tags
    assert tags["element_name"] == "LLM Trainer Demo" and tags["running_on"] == "local"
    assert tags["quantization"].startswith("nf4") and tags["device"] == "cpu"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    assert tags["git_commit"] == head.stdout.strip()  # the tests run in a clone: the commit is known
    assert tags["data_fingerprint"] == summary_fingerprint(client, summary)
    losses = [m.value for m in client.get_metric_history(summary.mlflow_run_id, "train_loss")]
    assert len(losses) == settings.max_steps
    # Training loss falls: the last fifth is clearly below the first fifth.
    fifth = len(losses) // 5
    assert statistics.mean(losses[-fifth:]) < statistics.mean(losses[:fifth]) - 0.15
    assert run.data.metrics["eval_loss"] > 0 and run.data.metrics["eval_perplexity"] > 1
    assert run.data.metrics["rows_quarantined"] == 0
    artifacts = {a.path for a in client.list_artifacts(summary.mlflow_run_id)}
    assert {"settings.yaml", "data", "eval"} <= artifacts
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.name == "chat"


def summary_fingerprint(client, summary):
    version = client.get_model_version(summary.model_name, summary.model_version)
    return version.tags["data_fingerprint"]


def test_registered_version_is_champion_and_answers_prompts(demo_run):
    settings, summary, client = demo_run
    assert summary.model_version == "1" and set(summary.aliases) == {"challenger", "champion"}
    assert str(client.get_model_version_by_alias(summary.model_name, "champion").version) == "1"
    model = mlflow.pyfunc.load_model(f"models:/{summary.model_name}/{summary.model_version}")
    answers = model.predict(
        pd.DataFrame({"prompt": ["My order has not arrived yet, can you help?", "How do I reset my password?"]})
    )
    assert len(answers) == 2 and all(isinstance(a, str) and a.strip() for a in answers)
    assert model.predict(["Where is my refund?"], params={"max_new_tokens": 5})[0].strip()


def test_backup_manifest_verifies(demo_run):
    _, summary, _ = demo_run
    manifest = verify(summary.backup_location)
    assert "adapter/adapter_model.safetensors" in manifest.files
    assert "data/validation_report.json" in manifest.files
    assert manifest.metadata["version"] == summary.model_version
