"""What the e2e tests read back, through the servers' REST APIs only (as a dashboard or a script
on another machine would): MLflow's /api/2.0/mlflow/... and Prefect's /api/flow_runs/..."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _request(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST" if data is not None else "GET"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


class MlflowRest:
    def __init__(self, url: str):
        self.url = url.rstrip("/") + "/api/2.0/mlflow"

    def get(self, path: str, **params) -> dict:
        return _request(f"{self.url}/{path}?{urllib.parse.urlencode(params)}")

    def post(self, path: str, body: dict) -> dict:
        return _request(f"{self.url}/{path}", body)

    def run_for_flow_run(self, flow_run_id: str, experiment: str = "llm-trainer") -> dict:
        """The MLflow run of a flow run (tagged llm_trainer.run_key = the flow run id)."""
        experiment_id = self.get("experiments/get-by-name", experiment_name=experiment)["experiment"]["experiment_id"]
        found = self.post(
            "runs/search",
            {"experiment_ids": [experiment_id], "filter": f"tags.`llm_trainer.run_key` = '{flow_run_id}'"},
        ).get("runs", [])
        assert len(found) == 1, f"expected one MLflow run for flow run {flow_run_id}, found {len(found)}"
        return found[0]

    def metric_history(self, run_id: str, key: str) -> list[float]:
        return [m["value"] for m in self.get("metrics/get-history", run_id=run_id, metric_key=key).get("metrics", [])]

    def versions(self, name: str) -> list[dict]:
        found = self.get("model-versions/search", filter=f"name='{name}'", max_results=1000).get("model_versions", [])
        return sorted(found, key=lambda v: int(v["version"]))

    def version(self, name: str, version: str) -> dict:
        return self.get("model-versions/get", name=name, version=version)["model_version"]

    def alias(self, name: str, alias: str) -> str:
        return self.get("registered-models/alias", name=name, alias=alias)["model_version"]["version"]


def tags(entity: dict) -> dict[str, str]:
    """Tags of a run (`{"data": {"tags": [...]}}`) or a model version (`{"tags": [...]}`) as a dict."""
    items = entity.get("data", entity).get("tags", [])
    return {t["key"]: t["value"] for t in items}


def params(run: dict) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}


def metrics(run: dict) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}


class PrefectRest:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def flow_run(self, flow_run_id: str) -> dict:
        return _request(f"{self.url}/flow_runs/{flow_run_id}")

    def states(self, flow_run_id: str) -> list[str]:
        """The names of every state the flow run went through, oldest first."""
        found = _request(f"{self.url}/flow_run_states/?flow_run_id={flow_run_id}")
        return [s["name"] for s in sorted(found, key=lambda s: s["timestamp"])]

    def wait(self, flow_run_ids: list[str], timeout: float) -> dict[str, dict]:
        """Poll until every flow run is in a terminal state; their final records."""
        deadline = time.monotonic() + timeout
        while True:
            runs = {i: self.flow_run(i) for i in flow_run_ids}
            if all(r["state"]["type"] in TERMINAL for r in runs.values()):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError({i: r["state"]["name"] for i, r in runs.items()})
            time.sleep(1)
