"""The registered model: the adapter logged as an MLflow pyfunc (see `serving.py`), registered or
saved to a folder.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

from trainer.registry.client import client, mlflow_module

# Base weights up to this size are embedded in the logged model, so the registered version is
# self-contained (the demo model is ~1 MB); bigger bases are referenced by path / hub id.
EMBED_BASE_MAX_BYTES = 200 * 2**20


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
    """Log the adapter as a pyfunc model and register it. Returns the new ModelVersion.

    `Model.log` with the run id (what `mlflow.pyfunc.log_model` calls, which takes no run id) rather
    than inside `with mlflow.start_run(run_id)`: leaving that block would end the run as FINISHED."""
    import mlflow
    from mlflow.models import Model

    mlflow_module()
    # MLflow 3 files a logged model under the *active* experiment, not its run's: with none set that
    # is experiment 0, whose artifact root on a database store is ./mlruns of whatever folder the
    # command ran in, so the registry would point into a folder nobody keeps. The run's experiment
    # has our artifact location (beside the store, client.ensure_experiment).
    mlflow.set_experiment(experiment_id=client().get_run(run_id).info.experiment_id)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = _model_artifacts(Path(tmp), adapter_dir, base_model_dir, hub_id, quantization_bits, max_new_tokens)
        with warnings.catch_warnings():
            # No input_example on purpose: MLflow would load the model to run it at log time
            # (minutes for an 8B base); the round trip is tested instead.
            warnings.filterwarnings("ignore", message=".*(input example|type hints).*", category=UserWarning)
            info = Model.log(
                artifact_path=None,  # deprecated in favour of name, yet positional in Model.log
                name="model",
                flavor=mlflow.pyfunc,
                run_id=run_id,
                flavor_name="pyfunc.ModelFromCode",
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
    path: Path,
    adapter_dir: Path,
    base_model_dir: Path | None,
    hub_id: str | None,
    quantization_bits: int | None,
    max_new_tokens: int,
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


def _model_artifacts(
    tmp: Path,
    adapter_dir: Path,
    base_model_dir: Path | None,
    hub_id: str | None,
    quantization_bits: int | None,
    max_new_tokens: int,
) -> dict[str, str]:
    reference = tmp / "base_reference.json"
    reference.write_text(
        json.dumps(
            {
                "path": str(base_model_dir) if base_model_dir is not None else None,
                "hub_id": hub_id,
                "quantization_bits": quantization_bits,
                "max_new_tokens": max_new_tokens,
            },
            indent=2,
        )
    )
    artifacts = {"adapter": str(adapter_dir), "base_reference": str(reference)}
    if (
        base_model_dir is not None
        and Path(base_model_dir).is_dir()
        and _dir_size(Path(base_model_dir)) <= EMBED_BASE_MAX_BYTES
    ):
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
    for package in (
        "mlflow",
        "torch",
        "transformers",
        "peft",
        "accelerate",
        "safetensors",
        "tokenizers",
        "bitsandbytes",
        "pandas",
    ):
        try:
            reqs.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return reqs
