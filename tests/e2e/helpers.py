"""Small helpers the e2e tests share: the deployments' settings, CLI flags, flow run ids."""

from __future__ import annotations

import json
import re

import yaml

from tests.e2e.servers import REPO

# Short runs: the e2e tests prove the deployments, servers and registry, not the training.
LEAN = {
    "max_steps": 4,
    "save_every_n_iterations": 2,
    "num_sample_generations": 0,
    "eval_generation_rows": 4,
    "max_new_tokens": 8,
    "score_baselines": False,
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def deployment_settings(name: str) -> dict:
    """The `settings` parameter of a deployment, as prefect.yaml defines it."""
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = [d for d in config["deployments"] if d["name"] == name]
    return dict(deployment["parameters"]["settings"])


def settings_json(base: dict, **changes) -> str:
    return json.dumps({"settings": {**base, **changes}})


def set_flags(**values) -> list[str]:
    """`--set KEY=VALUE` arguments for llm-trainer."""
    flags = []
    for key, value in values.items():
        flags += ["--set", f"{key}={'' if value is None else str(value).lower() if isinstance(value, bool) else value}"]
    return flags


def flow_run_id(output: str) -> str:
    found = UUID.search(output)
    assert found, f"no flow run id in:\n{output}"
    return found.group(0)
