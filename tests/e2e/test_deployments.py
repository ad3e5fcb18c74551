"""The deployments of prefect.yaml against real servers, driven the way a user drives them.

One stack for the module (tests/e2e/conftest.py): `prefect server start`, `mlflow server` (sqlite,
local artifact root) on free 127.0.0.1 ports, a process work pool, `prefect deploy --all` and
`prefect worker start`. Results are read back through the MLflow server's REST API only.
Each test uses its own registered model name.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.e2e.api import metrics, params, tags
from tests.e2e.helpers import (
    LEAN,
    deployment_settings,
    flow_run_id,
    set_flags,
    settings_json,
)
from tests.e2e.servers import WORK_POOL

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("logs_on_failure")]


def when(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


@pytest.mark.timeout(300)
def test_bad_settings_are_refused_when_the_run_is_created(stack, prefect_api):
    base = deployment_settings("adhoc")
    # prefect deployment run: the server checks the deployment's schema (enforce_parameter_schema).
    out = stack.cli(
        "prefect",
        "deployment",
        "run",
        "llm-trainer/adhoc",
        "--params",
        settings_json(base, learning_rate=5),
        check=False,
        timeout=60,
    )
    message = " ".join(out.stdout.split())
    assert out.returncode == 1, out.stdout + out.stderr
    assert (
        "Validation failed for field 'settings.learning_rate'. Failure reason: 5 is greater than the maximum of 1.0"
        in message
    )
    out = stack.cli(
        "prefect",
        "deployment",
        "run",
        "llm-trainer/adhoc",
        "--params",
        settings_json(base, lerning_rate=0.1),
        check=False,
        timeout=60,
    )
    assert out.returncode == 1 and "'lerning_rate' was unexpected" in " ".join(out.stdout.split())
    # llm-trainer submit / run: the CLI's own one-line messages, before anything reaches Prefect.
    out = stack.cli("llm-trainer", "submit", "llm-trainer/adhoc", "--set", "learning_rate=5", check=False, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: learning_rate: Input should be less than or equal to 1 (got 5)"
    out = stack.cli("llm-trainer", "run", "--set", "running_on=gpu-pool-that-is-not-there", check=False, timeout=60)
    assert out.returncode == 1 and out.stderr.strip().startswith(
        "error: running_on: no llm-trainer deployment on work pool 'gpu-pool-that-is-not-there'"
    )
    # A folder that only the worker can check: submitted with a note, then the run fails on the
    # worker before any stage, its state message naming the setting. (--timeout 1: stop watching.)
    out = stack.cli(
        "llm-trainer",
        "submit",
        "--set",
        "training_data_path=examples/nope",
        "--watch",
        "--timeout",
        "1",
        check=False,
        timeout=60,
    )
    assert "note: training_data_path: examples/nope is not here; it must exist on the worker" in out.stderr
    assert out.returncode == 1 and "still running after 1s; follow it: prefect flow-run watch" in out.stderr
    (failed,) = prefect_api.wait([flow_run_id(out.stderr)], timeout=60).values()
    assert failed["state"]["type"] == "FAILED"
    assert "settings.training_data_path: Value error, examples/nope does not exist" in failed["state"]["message"]


@pytest.mark.timeout(600)
def test_scheduled_retraining_continues_from_the_champion(stack, mlflow_api):
    name = "e2e-retrain"
    scheduled = deployment_settings("scheduled-retraining")
    assert scheduled["trained_artifact"].endswith("@champion") and scheduled["min_improvement"] == 0.0
    champion_uri = f"models:/{name}@champion"
    lean = {**LEAN, "score_baselines": True, "registered_model_name": name}  # the policy scores the champion

    # The first scheduled run of a new model: no champion yet, so (trained_artifact_if_unset:
    # start_from_base) it trains from the base, says so, and becomes the first champion.
    assert scheduled["trained_artifact_if_unset"] == "start_from_base"
    first = stack.cli(
        "llm-trainer",
        "submit",
        "llm-trainer/scheduled-retraining",
        *set_flags(**lean, trained_artifact=champion_uri),
        "--watch",
        timeout=240,
    )
    assert mlflow_api.alias(name, "champion") == "1"
    first_run = mlflow_api.run_for_flow_run(first.stdout.strip())
    assert tags(first_run)["parent_note"] == f"{champion_uri} was not set: trained from the base"
    assert "parent_model" not in tags(first_run)

    # The next scheduled run on the same data with the same settings: nothing to train (skip_if_unchanged).
    assert scheduled["skip_if_unchanged"] is True
    unchanged = stack.cli(
        "llm-trainer",
        "submit",
        "llm-trainer/scheduled-retraining",
        *set_flags(**lean, trained_artifact=champion_uri),
        "--watch",
        timeout=240,
    )
    t = tags(mlflow_api.run_for_flow_run(unchanged.stdout.strip()))
    assert t["outcome"] == "unchanged" and t["unchanged_champion_version"] == "1"
    assert [v["version"] for v in mlflow_api.versions(name)] == ["1"]

    # A changed training setting: it trains, starting from models:/NAME@champion.
    second = stack.cli(
        "llm-trainer",
        "submit",
        "llm-trainer/scheduled-retraining",
        *set_flags(**{**lean, "max_steps": 6}, trained_artifact=champion_uri),
        "--watch",
        timeout=240,
    )
    run = mlflow_api.run_for_flow_run(second.stdout.strip())
    p, t = params(run), tags(run)
    assert p["trained_artifact"] == champion_uri and t["trained_artifact"] == champion_uri
    assert p["learning_rate"] == str(scheduled["learning_rate"]) and p["min_improvement"] == "0.0"
    versions = mlflow_api.versions(name)
    assert [v["version"] for v in versions] == ["1", "2"] and versions[1]["run_id"] == run["info"]["run_id"]
    v2 = tags(mlflow_api.version(name, "2"))
    # Lineage: warm-started from the version the alias pointed to, recorded on the run and the version.
    for lineage in (t, v2):
        assert lineage["parent_model"] == name and lineage["parent_version"] == "1"
        assert lineage["parent_run_id"] == first_run["info"]["run_id"]
    # Promotion followed the policy: both scored on this run's eval rows, champion moved only if better.
    m = metrics(run)
    improvement = m["champion_eval_loss"] - m["eval_loss"]
    promoted = improvement > scheduled["min_improvement"]
    assert v2["promotion_decision"] == ("promoted" if promoted else "kept_champion"), v2
    assert mlflow_api.alias(name, "champion") == ("2" if promoted else "1")
    assert mlflow_api.alias(name, "challenger") == "2"


@pytest.mark.timeout(600)
def test_two_adhoc_runs_at_once_are_recorded_serialised_and_both_registered(stack, mlflow_api, prefect_api):
    name = "e2e-concurrent"
    settings = {**deployment_settings("adhoc"), **LEAN, "registered_model_name": name}
    # One run with `prefect deployment run`, one with `llm-trainer run --set running_on=POOL`
    # (PREFECT_API_URL is set: it submits to the deployment on that pool and returns).
    by_prefect = stack.popen(
        "prefect",
        "deployment",
        "run",
        "llm-trainer/adhoc",
        "--params",
        settings_json(settings),
        name="concurrent-prefect",
    )
    by_cli = stack.cli(
        "llm-trainer",
        "run",
        "--preset",
        "demo",
        *set_flags(**LEAN, registered_model_name=name, running_on=WORK_POOL),
        timeout=60,
    )
    assert "Submitted flow run" in by_cli.stderr and "to llm-trainer/adhoc on work pool 'llm-trainer'" in by_cli.stderr
    assert by_prefect.proc.wait(timeout=60) == 0, by_prefect.tail()
    ids = [flow_run_id(by_prefect.log.read_text()), flow_run_id(by_cli.stderr)]

    finished = prefect_api.wait(ids, timeout=220)
    assert {r["state"]["type"] for r in finished.values()} == {"COMPLETED"}, {
        i: r["state"] for i, r in finished.items()
    }
    # concurrency_limit 1: one run waited for the other's slot, and they did not overlap.
    first, second = sorted(finished.values(), key=lambda r: when(r["start_time"]))
    assert when(second["start_time"]) >= when(first["end_time"])
    assert any("AwaitingConcurrencySlot" in prefect_api.states(r["id"]) for r in finished.values())

    # Both recorded, each registered exactly once: versions 1 and 2, from the two runs.
    runs = [mlflow_api.run_for_flow_run(i) for i in ids]
    run_ids = {run["info"]["run_id"] for run in runs}
    assert len(run_ids) == 2
    versions = mlflow_api.versions(name)
    assert [v["version"] for v in versions] == ["1", "2"]
    assert {v["run_id"] for v in versions} == run_ids
    assert all(v["status"] == "READY" for v in versions)

    # What `prefect deployment run` sent reached the settings model on the worker and was recorded as given.
    run = runs[0]
    run_id = run["info"]["run_id"]
    assert run["info"]["status"] == "FINISHED"
    p = params(run)
    assert p["registered_model_name"] == name and p["max_steps"] == "4" and p["learning_rate"] == "0.003"
    assert p["running_on"] == WORK_POOL and p["training_data_path"] == "examples/data/customer-support/chat"
    t = tags(run)
    assert t["running_on"] == WORK_POOL and t["device"] == "cpu" and t["quantization"].startswith("nf4")
    assert t["prefect_work_pool"] == WORK_POOL and t["prefect_deployment"] == "adhoc"  # where it really ran
    # The worker ran in the stack's state folder (the worker's environment reached the flow run).
    assert t["output_dir"].startswith(str(stack.root / "state" / "runs"))
    assert len(mlflow_api.metric_history(run_id, "train_loss")) == 4
    m = metrics(run)
    assert m["eval_loss"] > 0 and m["rows_valid"] == 360
    (version,) = [v for v in versions if v["run_id"] == run_id]
    assert tags(mlflow_api.version(name, version["version"]))["data_fingerprint"] == t["data_fingerprint"]
