"""Where the base model's files come from.

First match wins: `base_model_assets_path` (a local folder), the locally built tiny model for
`tiny-llama`, then the Hugging Face cache, then the hub when online (with `HF_TOKEN` from the
environment for gated models; the token is never logged). The validate stage needs the tokenizer
alone, which is fetched without the weights.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from trainer.config.settings import Settings
from trainer.errors import SettingsError
from trainer.model.tiny import ensure_tiny_model

log = logging.getLogger("llm_trainer.assets")


@dataclass
class ModelAssets:
    base_model_dir: str
    base_source: str  # local-folder | built-locally | hf-cache | hub
    hub_id: str | None
    resume_checkpoint: str | None = None
    warm_start_adapter: str | None = None
    trained_artifact: str | None = None
    lineage: dict[str, str] = field(default_factory=dict)  # parent_model / parent_version / parent_run_id / ...


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
        raise SettingsError(
            f"base_model_architecture: could not fetch {arch.hub_id}{hint}: {type(exc).__name__}"
        ) from None
    return Path(path), "hub"


# What AutoTokenizer needs from a hub repo: the data-contract token check fetches only these, so
# validation never downloads weights.
TOKENIZER_PATTERNS = ["tokenizer*", "special_tokens_map.json", "config.json", "chat_template*", "*.model", "*.tiktoken"]


def resolve_tokenizer_dir(settings: Settings) -> Path:
    """The folder the base model's tokenizer loads from, without fetching weights: the local assets
    folder, the locally built tiny model, or the tokenizer files alone from the HF cache / the hub."""
    if settings.base_model_assets_path is not None:
        return settings.base_model_assets_path
    arch = settings.architecture
    if arch.hub_id is None:
        return ensure_tiny_model()
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(arch.hub_id, allow_patterns=TOKENIZER_PATTERNS, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    # Tokenizer-only downloads go to a folder of their own, not the HF cache, so the cache never
    # holds a snapshot that looks like the model but lacks its weights.
    from trainer.config.state import models_dir

    local = models_dir() / "tokenizers" / arch.hub_id.replace("/", "--")
    if (local / "tokenizer_config.json").is_file():
        return local
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise SettingsError(
            f"base_model_architecture: the tokenizer of {arch.hub_id} is not in the Hugging Face cache and "
            "HF_HUB_OFFLINE "
            "is set; download the model on a connected machine or set base_model_assets_path to a local model folder"
        )
    try:
        return Path(
            snapshot_download(
                arch.hub_id, allow_patterns=TOKENIZER_PATTERNS, local_dir=local, token=os.environ.get("HF_TOKEN")
            )
        )
    except (HfHubHTTPError, OSError) as exc:
        hint = " (a gated model: accept its licence on the hub and set HF_TOKEN)" if arch.gated else ""
        raise SettingsError(
            f"base_model_architecture: could not fetch the tokenizer of {arch.hub_id}{hint}: {type(exc).__name__}"
        ) from None


def tokenizer_digest(tokenizer_dir: Path) -> str:
    """sha256 over the tokenizer's files (not the weights): token counts change only when this does."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(Path(tokenizer_dir).iterdir()):
        if path.is_file() and (
            path.name.startswith(("tokenizer", "special_tokens", "chat_template"))
            or path.suffix in (".model", ".tiktoken")
        ):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def load_counting_tokenizer(tokenizer_dir: Path, trust_remote_code: bool = False):
    """The tokenizer exactly as training sets it up (chat template included), for counting tokens."""
    from trainer.model.loading import load_tokenizer
    from trainer.model.tokens import ensure_chat_template

    tokenizer = load_tokenizer(Path(tokenizer_dir), trust_remote_code)
    ensure_chat_template(tokenizer)
    return tokenizer
