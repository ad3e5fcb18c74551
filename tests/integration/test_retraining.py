"""Scheduled retraining on real Prefect, MLflow (sqlite) and training on the tiny model: a run on the
champion's data with the champion's training settings trains nothing (skip_if_unchanged); one more
row trains again; and the promotion policy can compare the scored answers (eval_rouge_l).

  1  fresh model, skip_if_unchanged, promotion_metric=eval_rouge_l -> version 1, champion
  2  the same settings, the same files                              -> unchanged: nothing registered
  3  one more row in the same folder                                -> version 2, decided by eval_rouge_l
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
from mlflow import MlflowClient

from tests.conftest import DEMO_DATA, chat
from trainer.config import state
from trainer.config.loading import load_settings

pytestmark = pytest.mark.slow

NAME = "retrain-model"


@pytest.fixture(scope="module")
def retraining(prefect_server, tiny_model_dir, tmp_path_factory):
    from flows import pipeline

    data = tmp_path_factory.mktemp("retrain") / "chat"
    shutil.copytree(DEMO_DATA, data)
    sets = [
        f"training_data_path={data}",
        f"registered_model_name={NAME}",
        "max_steps=4",
        "save_every_n_iterations=2",
        "num_sample_generations=2",
        "eval_generation_rows=4",
        "max_new_tokens=8",
        "promotion_metric=eval_rouge_l",
        "skip_if_unchanged=true",
    ]
    first = pipeline.llm_trainer(load_settings("demo", None, sets))
    started = time.monotonic()
    second = pipeline.llm_trainer(load_settings("demo", None, [*sets, "element_name=Renamed, still the same"]))
    second_seconds = time.monotonic() - started
    one_more = chat("Can I change the delivery address after ordering?", "Yes, until the parcel ships: open the order.")
    data_file = sorted(data.glob("*.jsonl"))[0]
    data_file.write_text(data_file.read_text(encoding="utf-8") + json.dumps(one_more) + "\n", encoding="utf-8")
    third = pipeline.llm_trainer(load_settings("demo", None, sets))
    return {
        "first": first,
        "second": second,
        "second_seconds": second_seconds,
        "third": third,
        "client": MlflowClient(state.tracking_uri()),
    }


def test_unchanged_data_and_settings_train_and_register_nothing(retraining):
    first, second, client = retraining["first"], retraining["second"], retraining["client"]
    assert first.outcome == "trained" and first.model_version == "1" and "champion" in first.aliases
    assert second.outcome == "unchanged" and second.model_version == "1" and second.global_step == 0
    assert "skip_if_unchanged" in second.promotion and "version 1" in second.promotion
    # Nothing registered by the second run: the third run's version is the second one.
    assert retraining["third"].model_version == "2"
    run = client.get_run(second.mlflow_run_id)
    assert run.data.tags["outcome"] == "unchanged" and run.data.tags["unchanged_champion_version"] == "1"
    assert run.info.status == "FINISHED"
    assert "train_loss" not in run.data.metrics and "eval_loss" not in run.data.metrics
    assert client.search_model_versions(f"name = '{NAME}' and run_id = '{second.mlflow_run_id}'") == []
    assert retraining["second_seconds"] < 60, retraining["second_seconds"]


def test_one_more_row_trains_again(retraining):
    third, client = retraining["third"], retraining["client"]
    assert third.outcome == "trained" and third.global_step == 4
    first_tags = client.get_model_version(NAME, "1").tags
    third_tags = client.get_model_version(NAME, "2").tags
    assert first_tags["training_hash"] == third_tags["training_hash"]  # same settings ...
    assert first_tags["data_fingerprint"] != third_tags["data_fingerprint"]  # ... new data


def test_answers_are_scored_and_promotion_compares_rouge_l(retraining):
    client = retraining["client"]
    first = client.get_run(retraining["first"].mlflow_run_id).data
    assert {"eval_exact_match", "eval_rouge_l", "base_eval_rouge_l"} <= set(first.metrics)
    assert all(0.0 <= first.metrics[k] <= 1.0 for k in ("eval_exact_match", "eval_rouge_l"))
    third = client.get_run(retraining["third"].mlflow_run_id).data
    ours, champion = third.metrics["eval_rouge_l"], third.metrics["champion_eval_rouge_l"]
    promoted = "champion" in retraining["third"].aliases
    assert "eval_rouge_l" in third.tags["promotion_reason"]
    assert promoted == (ours > champion), (ours, champion, third.tags["promotion_reason"])
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == ("2" if promoted else "1")
