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
import time
import warnings
from pathlib import Path
from typing import Any

from trainer import state
from trainer.redact import redact
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
    # Not state.uses_local_tracking(): mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, so after
    # the first call that would say "remote" and artifacts would land in ./mlruns of the cwd.
    if state.tracking_uri() == state.local_tracking_uri():
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
        params[key] = redact("" if value is None else (json.dumps(value) if isinstance(value, (list, dict)) else str(value)))[:6000]
    return params


def settings_hash(settings: Settings) -> str:
    """A short hash of every recorded setting: versions trained with the same settings share it."""
    import hashlib

    return hashlib.sha256(json.dumps(settings_params(settings), sort_keys=True).encode()).hexdigest()[:16]


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
        path.write_text(redact(settings.to_yaml()), encoding="utf-8")
        c.log_artifact(run_id, str(path))
    return run_id


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_tag(run_id, key, redact(str(value)))


def set_parent_run(run_id: str, parent_run_id: str) -> None:
    """Nest `run_id` under `parent_run_id` (the MLflow UI shows nested runs by this tag)."""
    client().set_tag(run_id, "mlflow.parentRunId", parent_run_id)


def finish_run(run_id: str, status: str = "FINISHED") -> None:
    client().set_terminated(run_id, status)


def run_tags(run_id: str) -> dict[str, str]:
    return dict(client().get_run(run_id).data.tags)


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None, synchronous: bool = True) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
    client().log_batch(run_id, metrics=batch, synchronous=synchronous)


class _BufferedSink:
    """Per-step metrics, kept with their own step and time and sent to MLflow as one asynchronous
    `log_batch` every `interval` seconds (and on `flush()`).

    One call per step cost ~10 ms of the training loop's time on 2 CPU cores (a client call per
    step plus the background writer competing for the cores): 5.7 s over 600 tiny-model steps
    (benchmarks/overhead.py). The MLflow UI is at most `interval` seconds behind.
    """

    MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch

    def __init__(self, run_id: str, interval: float):
        self.run_id, self.interval = run_id, interval
        self.pending: list = []
        self.last_sent = time.monotonic()
        self.client = client()
        # A retried attempt resumes from its last checkpoint and replays the steps after it, which
        # the failed attempt already logged: those are not logged twice.
        self.logged_up_to = max((m.step for m in self.client.get_metric_history(run_id, "train_loss")), default=0)

    def __call__(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        if step <= self.logged_up_to:
            return
        now = int(time.time() * 1000)
        self.pending.extend(Metric(k, float(v), now, step) for k, v in values.items())
        if time.monotonic() - self.last_sent >= self.interval or len(self.pending) >= self.MAX_BATCH:
            self.send()

    def send(self) -> None:
        pending, self.pending = self.pending, []
        for start in range(0, len(pending), self.MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=pending[start : start + self.MAX_BATCH], synchronous=False)
        self.last_sent = time.monotonic()


_open_sinks: list[_BufferedSink] = []


def metrics_sink(run_id: str, interval: float = 5.0):
    """A callable the trainer reports per-step metrics to (it knows nothing of MLflow). Buffered and
    asynchronous so the training loop never waits on the tracking store; `flush()` at the end."""
    sink = _BufferedSink(run_id, interval)
    _open_sinks.append(sink)
    return sink


def flush() -> None:
    """Send buffered metrics and wait for asynchronously logged ones to reach the store."""
    while _open_sinks:
        _open_sinks.pop().send()
    _mlflow().flush_async_logging()


def log_artifact(run_id: str, path: Path, artifact_path: str | None = None) -> None:
    client().log_artifact(run_id, str(path), artifact_path)


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    client().log_text(run_id, redact(text), artifact_file)


def log_figure(run_id: str, figure, artifact_file: str) -> None:
    client().log_figure(run_id, figure, artifact_file)


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of every logged value of `key`, in step order."""
    return sorted((m.step, m.value) for m in client().get_metric_history(run_id, key))


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

    _mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = _model_artifacts(Path(tmp), adapter_dir, base_model_dir, hub_id, quantization_bits, max_new_tokens)
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
            # No input_example on purpose: MLflow would load the model to run it at log time
            # (minutes for an 8B base); the round trip is tested instead.
            warnings.filterwarnings("ignore", message=".*(input example|type hints).*", category=UserWarning)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("serving.py")),
                artifacts=artifacts,
                signature=_signature(max_new_tokens),
                # Listing requirements skips MLflow's inference, which loads the model in a
                # subprocess just to watch its imports.
                pip_requirements=_serving_requirements(),
                registered_model_name=registered_model_name,
            )
    return client().get_model_version(registered_model_name, str(info.registered_model_version))


def save_adapter_model(
    path: Path, adapter_dir: Path, base_model_dir: Path | None, hub_id: str | None, quantization_bits: int | None, max_new_tokens: int,
) -> Path:
    """The same pyfunc model as `log_adapter_model`, saved to a folder (no tracking server needed):
    `mlflow.pyfunc.load_model(path)` loads it. Used by `restore`."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(input example|type hints).*", category=UserWarning)
        artifacts = _model_artifacts(Path(tmp), adapter_dir, base_model_dir, hub_id, quantization_bits, max_new_tokens)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(Path(__file__).with_name("serving.py")),
            artifacts=artifacts,
            signature=_signature(max_new_tokens),
            pip_requirements=_serving_requirements(),
        )
    return Path(path)


def _model_artifacts(tmp: Path, adapter_dir: Path, base_model_dir: Path | None, hub_id: str | None, quantization_bits: int | None,
                     max_new_tokens: int) -> dict[str, str]:
    reference = tmp / "base_reference.json"
    reference.write_text(json.dumps({
        "path": str(base_model_dir) if base_model_dir is not None else None, "hub_id": hub_id,
        "quantization_bits": quantization_bits, "max_new_tokens": max_new_tokens,
    }, indent=2))
    artifacts = {"adapter": str(adapter_dir), "base_reference": str(reference)}
    if base_model_dir is not None and Path(base_model_dir).is_dir() and _dir_size(Path(base_model_dir)) <= EMBED_BASE_MAX_BYTES:
        artifacts["base_model"] = str(base_model_dir)
    return artifacts


def _signature(max_new_tokens: int):
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

    # One unnamed string column: a DataFrame with a `prompt` column, a list of prompts and a
    # single string all pass schema enforcement (a named column would reject plain lists).
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string)]),
        outputs=Schema([ColSpec(DataType.string)]),
        params=ParamSchema([ParamSpec("max_new_tokens", DataType.long, max_new_tokens)]),
    )


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
        c.set_model_version_tag(name, version, key, redact(str(value)))


def model_version(name: str, version: str):
    """The ModelVersion (tags, aliases, run id); SettingsError naming the model when it is not there."""
    from mlflow.exceptions import MlflowException

    from trainer.settings import SettingsError

    try:
        return client().get_model_version(name, str(version))
    except MlflowException:
        raise SettingsError(f"{name} version {version}: not in the model registry at {redact(state.tracking_uri())}") from None


def model_versions(name: str, limit: int | None = None) -> list:
    """The newest `limit` versions of `name` (all by default), newest first, with their aliases
    (search results leave aliases out, so each is read again)."""
    c = client()
    found = sorted(c.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version), reverse=True)[:limit]
    return [c.get_model_version(name, str(v.version)) for v in found]


def versions_of_run(run_id: str) -> list:
    """The registered versions logged from `run_id` (any model name), oldest first, with aliases."""
    from mlflow.exceptions import MlflowException

    c = client()
    try:
        found = sorted(c.search_model_versions(f"run_id = '{run_id}'"), key=lambda v: int(v.version))
    except MlflowException:
        return []
    return [c.get_model_version(v.name, str(v.version)) for v in found]


def get_run(run_id: str):
    from mlflow.exceptions import MlflowException

    from trainer.settings import SettingsError

    try:
        return client().get_run(run_id)
    except MlflowException:
        raise SettingsError(f"run {run_id}: not found at {redact(state.tracking_uri())}") from None


def latest_runs(experiment_name: str, limit: int) -> list:
    c = client()
    experiment = c.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    return list(c.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit))


def get_alias_version(name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def set_alias(name: str, alias: str, version: str) -> None:
    client().set_registered_model_alias(name, alias, version)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/name/3` -> (name, "3", None); `models:/name@champion` -> (name, None, "champion")."""
    from trainer.settings import SettingsError

    body = uri[len("models:/"):].strip("/")
    if "@" in body:
        name, _, alias = body.partition("@")
        if name and alias and "/" not in alias:
            return name, None, alias
    else:
        name, _, version = body.partition("/")
        if name and version.isdigit():
            return name, version, None
    raise SettingsError(f"trained_artifact: {uri}: expected models:/NAME/VERSION or models:/NAME@ALIAS")


def alias_is_unset(name: str, alias: str) -> bool:
    """True when the registered model does not exist or has no such alias (a model not trained
    yet); any other failure (an unreachable server) raises, so it is never taken for 'unset'."""
    from mlflow.exceptions import MlflowException

    try:
        client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        message = str(exc.message).lower()
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return True
        if exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in message and "not found" in message:
            return True
        raise
    return False


def resolve_registered(uri: str) -> dict[str, str]:
    """Lineage of a registry or run URI: parent_model, parent_version, parent_run_id (and parent_alias)."""
    from mlflow.exceptions import MlflowException

    from trainer.settings import SettingsError

    c = client()
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/"):].split("/", 1)[0]
        try:
            get_run(run_id)
        except SettingsError as exc:
            raise SettingsError(f"trained_artifact: {uri}: {exc}") from None
        found = versions_of_run(run_id)
        info = {"parent_run_id": run_id}
        if found:
            info.update(parent_model=found[0].name, parent_version=str(found[0].version))
        return info
    name, version, alias = parse_model_uri(uri)
    try:
        mv = c.get_model_version_by_alias(name, alias) if alias else c.get_model_version(name, version)
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise SettingsError(f"trained_artifact: {uri}: {name} has no {what} in the registry ({exc.message.splitlines()[0]})") from None
    info = {"parent_model": name, "parent_version": str(mv.version), "parent_run_id": mv.run_id or ""}
    if alias:
        info["parent_alias"] = alias
    return info


def model_files(uri: str, download_dir: Path) -> Path:
    """A local folder with the files of a logged model (`models:/...`) or run artifact (`runs:/...`).

    With a local artifact store the registered files are used where they are, without a copy;
    otherwise they are downloaded into `download_dir` (once: a finished download is reused)."""
    from mlflow.exceptions import MlflowException

    from trainer.settings import SettingsError

    if uri.startswith("models:/"):
        name, version, alias = parse_model_uri(uri)
        if alias:
            version = str(client().get_model_version_by_alias(name, alias).version)
        location = client().get_model_version_download_uri(name, version)
        local = _local_path(location)
        if local is not None and local.is_dir():
            return local
    done = Path(download_dir) / ".complete"
    target = Path(download_dir) / "files"
    if done.is_file() and target.is_dir():
        return Path(done.read_text(encoding="utf-8"))
    import shutil

    shutil.rmtree(download_dir, ignore_errors=True)
    target.mkdir(parents=True)
    try:
        local = Path(_mlflow().artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target)))
    except MlflowException as exc:
        raise SettingsError(f"trained_artifact: {uri} could not be resolved ({exc.message.splitlines()[0]})") from None
    done.write_text(str(local), encoding="utf-8")
    return local


def _local_path(location: str) -> Path | None:
    from urllib.parse import unquote, urlparse

    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if "://" not in location and ":" not in location.split("/", 1)[0]:
        return Path(location)
    return None


def find_restored_version(name: str, location: str, adapter_sha256: str) -> str | None:
    """The version a previous `restore --register` of this backup created, if any."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for v in sorted(versions, key=lambda v: int(v.version)):
        if v.tags.get("restored_from") == redact(location) and v.tags.get("adapter_sha256") == adapter_sha256:
            return str(v.version)
    return None


def create_run(experiment_name: str, run_name: str, tags: dict[str, str]) -> str:
    c = client()
    run = c.create_run(ensure_experiment(experiment_name), run_name=run_name,
                       tags={k: redact(str(v)) for k, v in {"mlflow.runName": run_name, **tags}.items()})
    return run.info.run_id


def ui_command() -> str:
    uri = state.tracking_uri()
    if uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {uri} --port 5000"
    return f"open {uri}"


def download_model_adapter(uri: str, download_dir: Path | None = None) -> Path:
    """The adapter folder of a logged model (`models:/name/3`, `models:/name@champion`, `runs:/id/model`)."""
    from trainer.settings import SettingsError

    local = model_files(uri, Path(download_dir or tempfile.mkdtemp(prefix="llm-trainer-artifact-")))
    for adapter in (local / "artifacts" / "adapter", local):
        if (adapter / "adapter_config.json").is_file():
            return adapter
    raise SettingsError(f"trained_artifact: {uri} is not an llm-trainer model (no artifacts/adapter in it)")


def find_version_for_run(name: str, run_id: str) -> str | None:
    """The version already registered from `run_id`, if any (what makes registration idempotent)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return str(min(int(v.version) for v in versions)) if versions else None
