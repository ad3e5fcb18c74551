"""All MLflow calls: runs, params, metrics, dataset lineage, the pyfunc model and the registry.

Calls name their run explicitly (MlflowClient with a run id) instead of relying on MLflow's
active-run state, so a stage can run in any thread or process and a retried stage finds the same
run. One MLflow run per flow run: `get_or_create_run` looks it up by the flow-run key tag, which
is what makes a retried or re-run stage idempotent.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

from trainer import state
from trainer.settings import Settings

log = logging.getLogger("llm_trainer.tracking")

RUN_KEY_TAG = "llm_trainer.run_key"
# Base weights up to this size are embedded in the logged model, so the registered version is
# self-contained (the demo model is ~1 MB); bigger bases are referenced by path / hub id.
EMBED_BASE_MAX_BYTES = 200 * 2**20
SECRET_MARKERS = ("token", "secret", "password", "api_key", "access_key", "credential")


def _mlflow():
    import mlflow

    mlflow.set_tracking_uri(state.tracking_uri())
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or state.tracking_uri())
    return mlflow


def client():
    from mlflow import MlflowClient

    _mlflow()
    return MlflowClient()


def ensure_experiment(name: str) -> str:
    c = client()
    experiment = c.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if state.uses_local_tracking():
        # Keep artifacts with the rest of the local state instead of ./mlruns in the cwd.
        artifact_location = (state.mlflow_artifacts_dir() / name).resolve().as_uri()
    try:
        return c.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # created concurrently by another run
        experiment = c.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=state.PROJECT_ROOT, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def settings_params(settings: Settings) -> dict[str, str]:
    """Every setting as an MLflow param (strings, 6000 chars max). Secrets never reach here:
    tokens and credentials are read from the environment, not from settings."""
    params = {}
    for key, value in settings.model_dump(mode="json").items():
        if any(marker in key.lower() for marker in SECRET_MARKERS):
            continue
        params[key] = "" if value is None else (json.dumps(value) if isinstance(value, (list, dict)) else str(value))[:6000]
    return params


def get_or_create_run(settings: Settings, run_key: str, run_name: str, extra_tags: dict[str, str] | None = None) -> str:
    """The MLflow run of this flow run: found by its key tag, or created with params and tags."""
    c = client()
    experiment_id = ensure_experiment(settings.experiment_name)
    found = c.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=1)
    if found:
        return found[0].info.run_id
    tags = {
        RUN_KEY_TAG: run_key,
        "mlflow.runName": run_name,
        "element_name": settings.element_name,
        "version": settings.version,
        "running_on": settings.running_on,
        "base_model_architecture": settings.base_model_architecture,
        "git_commit": git_commit(),
        **(extra_tags or {}),
    }
    run = c.create_run(experiment_id, tags=tags, run_name=run_name)
    run_id = run.info.run_id
    from mlflow.entities import Param

    c.log_batch(run_id, params=[Param(k, v) for k, v in settings_params(settings).items()])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.yaml"
        path.write_text(settings.to_yaml(), encoding="utf-8")
        c.log_artifact(run_id, str(path))
    return run_id


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_tag(run_id, key, str(value))


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    from mlflow.entities import Metric
    import time

    now = int(time.time() * 1000)
    client().log_batch(run_id, metrics=[Metric(k, float(v), now, step or 0) for k, v in metrics.items()])


def metrics_sink(run_id: str):
    """A callable the trainer reports per-step metrics to (it knows nothing of MLflow)."""
    c = client()
    from mlflow.entities import Metric
    import time

    def sink(values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        c.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in values.items()])

    return sink


def log_artifact(run_id: str, path: Path, artifact_path: str | None = None) -> None:
    client().log_artifact(run_id, str(path), artifact_path)


def log_dataset(run_id: str, report, examples_count: int, context: str = "training") -> None:
    """Dataset lineage: the data folder, its fingerprint and counts as an MLflow dataset input."""
    import mlflow
    import pandas as pd

    _mlflow()
    frame = pd.DataFrame([{"file": f.path, "format": f.format, "rows_total": float(f.rows_total), "rows_valid": float(f.rows_valid),
                           "rows_quarantined": float(f.rows_quarantined)} for f in report.files])
    dataset = mlflow.data.from_pandas(frame, source=report.data_path, name=Path(report.data_path).name, digest=report.fingerprint[:32])
    with mlflow.start_run(run_id=run_id):
        mlflow.log_input(dataset, context=context, tags={"contract_version": report.contract_version})


def log_table(run_id: str, rows: list[dict[str, str]], artifact_file: str) -> None:
    import mlflow
    import pandas as pd

    _mlflow()
    mlflow.log_table(pd.DataFrame(rows), artifact_file=artifact_file, run_id=run_id)


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def log_adapter_model(
    run_id: str,
    adapter_dir: Path,
    base_model_dir: Path,
    hub_id: str | None,
    quantization_bits: int | None,
    max_new_tokens: int,
    registered_model_name: str,
):
    """Log the adapter as a pyfunc model and register it. Returns the new ModelVersion."""
    import mlflow
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

    _mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "base_reference.json"
        reference.write_text(json.dumps({
            "path": str(base_model_dir), "hub_id": hub_id, "quantization_bits": quantization_bits, "max_new_tokens": max_new_tokens,
        }, indent=2))
        artifacts = {"adapter": str(adapter_dir), "base_reference": str(reference)}
        if _dir_size(base_model_dir) <= EMBED_BASE_MAX_BYTES:
            artifacts["base_model"] = str(base_model_dir)
        # One unnamed string column: a DataFrame with a `prompt` column, a list of prompts and a
        # single string all pass schema enforcement (a named column would reject plain lists).
        signature = ModelSignature(
            inputs=Schema([ColSpec(DataType.string)]),
            outputs=Schema([ColSpec(DataType.string)]),
            params=ParamSchema([ParamSpec("max_new_tokens", DataType.long, max_new_tokens)]),
        )
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
            # No input_example on purpose: MLflow would load the model to run it at log time
            # (minutes for an 8B base); the round trip is tested instead.
            warnings.filterwarnings("ignore", message=".*(input example|type hints).*", category=UserWarning)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("serving.py")),
                artifacts=artifacts,
                signature=signature,
                # Listing requirements skips MLflow's inference, which loads the model in a
                # subprocess just to watch its imports.
                pip_requirements=_serving_requirements(),
                registered_model_name=registered_model_name,
            )
    return client().get_model_version(registered_model_name, str(info.registered_model_version))


def _serving_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for package in ("mlflow", "torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "bitsandbytes", "pandas"):
        try:
            reqs.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return reqs


def set_version_tags(name: str, version: str, tags: dict[str, Any]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, str(value))


def get_alias_version(name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def set_alias(name: str, alias: str, version: str) -> None:
    client().set_registered_model_alias(name, alias, version)


def ui_command() -> str:
    uri = state.tracking_uri()
    if uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {uri} --port 5000"
    return f"open {uri}"


def download_model_adapter(uri: str) -> Path:
    """The adapter folder of a logged model (`models:/name/3`, `models:/name@champion`, `runs:/id/model`)."""
    from mlflow.exceptions import MlflowException

    from trainer.settings import SettingsError

    mlflow = _mlflow()
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tempfile.mkdtemp(prefix="llm-trainer-artifact-")))
    except MlflowException as exc:
        raise SettingsError(f"trained_artifact: {uri} could not be resolved ({exc.message.splitlines()[0]})") from None
    adapter = local / "artifacts" / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise SettingsError(f"trained_artifact: {uri} is not an llm-trainer model (no artifacts/adapter in it)")
    return adapter


def find_version_for_run(name: str, run_id: str) -> str | None:
    """The version already registered from `run_id`, if any (what makes registration idempotent)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return str(min(int(v.version) for v in versions)) if versions else None
