"""prefect.yaml and the submit path, checked without servers (the fast tier; tests/e2e deploys the same
file to real servers): the deployments' settings are valid settings, `running_on` is their work pool,
and settings sent to a worker are portable."""

from __future__ import annotations

import pytest
import yaml

from flows.submit import (
    PATH_SETTINGS,
    check_values,
    layered_values,
    settings_parameter,
    split_running_on,
)
from tests.conftest import REPO
from trainer.config.loading import load_settings
from trainer.errors import SettingsError

CONFIG = yaml.safe_load((REPO / "prefect.yaml").read_text())
DEPLOYMENTS = {d["name"]: d for d in CONFIG["deployments"]}


def test_prefect_yaml_has_the_adhoc_and_scheduled_deployments():
    assert {"adhoc", "scheduled-retraining"} <= set(DEPLOYMENTS)
    assert CONFIG["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PWD }}"}}]
    for d in DEPLOYMENTS.values():
        assert d["entrypoint"] == "flows/pipeline.py:llm_trainer" and d["enforce_parameter_schema"] is True
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
        # running_on is the deployment's work pool: the setting the run records is where it ran.
        assert d["parameters"]["settings"]["running_on"] == d["work_pool"]["name"]
    assert "schedules" not in DEPLOYMENTS["adhoc"]
    (schedule,) = DEPLOYMENTS["scheduled-retraining"]["schedules"]
    assert schedule["cron"] == "0 3 * * 1" and schedule["timezone"] == "UTC"


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))  # every deployment, not only the two named above
def test_deployment_settings_are_valid_settings(name):
    values = DEPLOYMENTS[name]["parameters"]["settings"]
    assert check_values(values) == []  # relative paths resolve from the clone's root, as on the worker
    if name == "scheduled-retraining":
        assert values["trained_artifact"] == f"models:/{values['registered_model_name']}@champion"
        assert values["auto_promote"] is True and values["promotion_metric"] == "eval_loss"


def test_submitted_settings_are_the_given_ones_with_clone_paths_made_relative(tmp_path):
    settings = load_settings("demo", None, ["running_on=gpu-node", "max_steps=6"])
    sent = settings_parameter(settings)
    assert sent["training_data_path"] == "examples/data/customer-support/chat"  # the demo preset's absolute path
    assert sent["running_on"] == "gpu-node" and sent["max_steps"] == 6
    assert "num_epochs" not in sent  # defaults are left to the worker's settings model
    elsewhere = load_settings(None, None, [f"training_data_path={tmp_path}"])
    assert settings_parameter(elsewhere)["training_data_path"] == tmp_path.as_posix()  # outside the clone: absolute
    assert set(PATH_SETTINGS) >= {"training_data_path", "base_model_assets_path", "output_dir"}


def test_layering_and_checks_match_the_cli(tmp_path):
    base = DEPLOYMENTS["adhoc"]["parameters"]["settings"]
    config = tmp_path / "run.yaml"
    config.write_text("preset: demo\nbatch_size: 2\n")
    values = layered_values(base, config, ["learning_rate=5e-4", "trained_artifact="])
    assert values["batch_size"] == 2 and values["learning_rate"] == 5e-4 and values["trained_artifact"] is None
    assert values["registered_model_name"] == base["registered_model_name"]
    # A path that is missing here may exist on the worker: a note, not an error.
    assert check_values({**base, "training_data_path": "/data/tickets"}) == [
        "training_data_path: /data/tickets is not here; it must exist on the worker"
    ]
    with pytest.raises(SettingsError, match=r"^learning_rate: Input should be less than or equal to 1 \(got 5\)$"):
        check_values({**base, "learning_rate": 5})
    with pytest.raises(SettingsError, match="unknown setting 'lerning_rate'"):
        check_values({**base, "lerning_rate": 0.1})


def test_running_on_names_a_pool_and_optionally_a_queue():
    assert split_running_on("phx-node-02") == ("phx-node-02", None)
    assert split_running_on("gpu/a100") == ("gpu", "a100")


def test_run_with_running_on_and_no_prefect_api_trains_here_and_says_so(monkeypatch, capsys):
    from flows.cli.run import _submitted_to_running_on

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings = load_settings("demo", None, ["running_on=phx-node-02"])
    assert _submitted_to_running_on(settings) is False
    assert capsys.readouterr().err.strip() == (
        "running_on=phx-node-02: PREFECT_API_URL is not set, so this run trains here, in this process"
    )


def test_operations_doc_commands_name_real_commands_deployments_and_settings():
    import re

    from flows.cli import app
    from trainer.config.settings import Settings

    text = (REPO / "docs" / "operations.md").read_text()
    for name in DEPLOYMENTS:
        assert f"llm-trainer/{name}" in text
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    used = re.findall(r"^llm-trainer (\w+)", text, flags=re.M)
    assert used and set(used) <= commands, set(used) - commands
    keys = set(re.findall(r"--set (\w+)=", text))
    assert keys and keys <= set(Settings.model_fields), keys - set(Settings.model_fields)
    assert "docs/operations.md" in (REPO / "README.md").read_text()
