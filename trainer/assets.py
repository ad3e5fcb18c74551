"""Resolve the base model assets and the optional trained artifact to start from.

Base assets, first match wins: `base_model_assets_path` (a local folder), the locally built tiny
model for `tiny-llama`, then the Hugging Face cache, then the hub when online (with `HF_TOKEN` from
the environment for gated models; the token is never logged).

Trained artifact: a checkpoint folder (exact continuation), an adapter folder (warm start: new
optimizer and schedule), or a registered model `models:/name/3`, `models:/name@alias`
(warm start from its adapter).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from trainer.settings import Settings, SettingsError
from trainer.tiny import ensure_tiny_model

log = logging.getLogger("llm_trainer.assets")
REGISTRY_SCHEMES = ("models:/", "runs:/")


@dataclass
class ModelAssets:
    base_model_dir: str
    base_source: str  # local-folder | built-locally | hf-cache | hub
    hub_id: str | None
    resume_checkpoint: str | None = None
    warm_start_adapter: str | None = None
    trained_artifact: str | None = None


def resolve_base_model(settings: Settings) -> tuple[Path, str]:
    if settings.base_model_assets_path is not None:
        return settings.base_model_assets_path, "local-folder"
    arch = settings.architecture
    if arch.hub_id is None:
        return ensure_tiny_model(), "built-locally"
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.tiktoken"]
    try:
        path = snapshot_download(arch.hub_id, allow_patterns=patterns, local_files_only=True)
        return Path(path), "hf-cache"
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise SettingsError(
            f"base_model_architecture: {arch.hub_id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
            "download it on a connected machine or set base_model_assets_path to a local model folder"
        )
    log.info("Downloading %s from the hub (safetensors only)", arch.hub_id)
    try:
        path = snapshot_download(arch.hub_id, allow_patterns=patterns, token=os.environ.get("HF_TOKEN"))
    except (HfHubHTTPError, OSError) as exc:
        hint = " (a gated model: accept its licence on the hub and set HF_TOKEN)" if arch.gated else ""
        raise SettingsError(f"base_model_architecture: could not fetch {arch.hub_id}{hint}: {type(exc).__name__}") from None
    return Path(path), "hub"


def classify_local_artifact(path: Path) -> str:
    """'checkpoint' (exact resume) or 'adapter' (warm start); SettingsError otherwise."""
    if (path / "trainer_state.json").is_file() and (path / "adapter_config.json").is_file():
        return "checkpoint"
    if (path / "adapter_config.json").is_file():
        return "adapter"
    raise SettingsError(
        f"trained_artifact: {path} is neither a checkpoint (trainer_state.json + adapter) nor an adapter folder (adapter_config.json)"
    )


def resolve_trained_artifact(value: str | None) -> tuple[str | None, str | None]:
    """(resume_checkpoint, warm_start_adapter) for the `trained_artifact` setting."""
    if not value:
        return None, None
    if value.startswith(REGISTRY_SCHEMES):
        from trainer.tracking import download_model_adapter

        adapter = download_model_adapter(value)
        return None, str(adapter)
    path = Path(value).expanduser()
    if not path.exists():
        raise SettingsError(f"trained_artifact: {value} does not exist; give a checkpoint or adapter folder, or models:/name/version")
    kind = classify_local_artifact(path)
    return (str(path), None) if kind == "checkpoint" else (None, str(path))


def resolve_assets(settings: Settings) -> ModelAssets:
    base_dir, source = resolve_base_model(settings)
    resume, warm = resolve_trained_artifact(settings.trained_artifact)
    return ModelAssets(
        base_model_dir=str(base_dir),
        base_source=source,
        hub_id=settings.architecture.hub_id,
        resume_checkpoint=resume,
        warm_start_adapter=warm,
        trained_artifact=settings.trained_artifact,
    )
