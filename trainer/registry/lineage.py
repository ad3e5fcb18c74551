"""Where a run starts from: resolving `trained_artifact`, checking it fits, recording lineage.

`trained_artifact` may be a checkpoint folder (exact continuation), an adapter folder (warm start:
new optimizer and schedule), a registered version (`models:/NAME/3`, `models:/NAME@champion`) or a
run's logged model (`runs:/RUN_ID/model`); the last three warm-start from the model's adapter.

- **Local folders are never downloaded or looked up**: no MLflow call is made for them. Their
  lineage comes from the files themselves (a checkpoint's completion marker names its MLflow run;
  a restored backup's MANIFEST.json names its model and version).
- **Registry sources** are resolved to a version number first (an alias moves; the lineage records
  the version that was used), then read in place from a local artifact store or downloaded once
  into the run's folder.
- **Compatibility**: the artifact must have been trained on the same base architecture and with
  the same tokenizer vocabulary as this run's base; otherwise a SettingsError names both, before
  any model is loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from trainer.config.settings import Settings
from trainer.errors import CheckpointError, SettingsError
from trainer.layout import BACKUP_MANIFEST, CHECKPOINT_MARKER, SETTINGS_FILE
from trainer.registry.uris import REGISTRY_SCHEMES

log = logging.getLogger("llm_trainer.lineage")


def classify_local_artifact(path: Path) -> str:
    """'checkpoint' (exact resume) or 'adapter' (warm start); SettingsError otherwise."""
    if (path / "trainer_state.json").is_file() and (path / "adapter_config.json").is_file():
        return "checkpoint"
    if (path / "adapter_config.json").is_file():
        return "adapter"
    raise SettingsError(
        f"trained_artifact: {path} is neither a checkpoint (trainer_state.json + adapter) nor an adapter folder "
        "(adapter_config.json)"
    )


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass
class ResolvedArtifact:
    source: str  # the trained_artifact setting, as given
    kind: str  # checkpoint | adapter
    path: Path  # a local folder
    lineage: dict[str, str] = field(default_factory=dict)  # parent_model / parent_version / parent_run_id / ...


def resolve_artifact(
    value: str | None,
    settings: Settings | None = None,
    base_model_dir: Path | None = None,
    download_dir: Path | None = None,
) -> ResolvedArtifact | None:
    """Resolve `trained_artifact` to a local checkpoint or adapter folder with its lineage; with
    `settings` and `base_model_dir`, also check that it fits this run's base model."""
    from trainer.registry.lineage import classify_local_artifact

    if not value:
        return None
    if value.startswith(REGISTRY_SCHEMES):
        from trainer import registry

        lineage = registry.resolve_registered(value)
        # Pin the version an alias pointed to, so a retry reads the same files even if the alias moved.
        pinned = (
            f"models:/{lineage['parent_model']}/{lineage['parent_version']}" if value.startswith("models:/") else value
        )
        path = registry.download_model_adapter(pinned, download_dir)
        kind = classify_local_artifact(path)
    else:
        path = Path(value).expanduser()
        if not path.exists():
            raise SettingsError(
                f"trained_artifact: {value} does not exist; give a checkpoint or adapter folder, models:/NAME/VERSION, "
                "models:/NAME@ALIAS or runs:/RUN_ID/model"
            )
        kind = classify_local_artifact(path)
        lineage = local_lineage(path, kind)
    _verify_files(path, kind)
    artifact = ResolvedArtifact(
        source=value, kind=kind, path=path, lineage={**lineage, "parent_artifact": value, "parent_kind": kind}
    )
    if settings is not None and base_model_dir is not None:
        check_compatible(artifact, settings, Path(base_model_dir))
    return artifact


def _verify_files(path: Path, kind: str) -> None:
    """The artifact's files are whole before anything loads them: a checkpoint against its completion
    marker (sizes, sha256), an adapter's weights by loading them. CheckpointError naming the file."""
    from trainer.train.checkpoints import verify_adapter, verify_checkpoint

    try:
        if kind == "checkpoint":
            verify_checkpoint(path)
        else:
            verify_adapter(path)
    except CheckpointError as exc:
        raise CheckpointError(f"trained_artifact: {exc}") from None


def local_lineage(path: Path, kind: str) -> dict[str, str]:
    """What a local folder says about where it came from, without asking any server."""
    lineage: dict[str, str] = {}
    markers = (
        [path / CHECKPOINT_MARKER]
        if kind == "checkpoint"
        else [
            *sorted((path.parent / "checkpoints").glob(f"checkpoint-*/{CHECKPOINT_MARKER}"), key=_step),  # a run folder
            path.parent / "checkpoint" / CHECKPOINT_MARKER,  # a restored backup
        ]
    )
    for marker in reversed(markers):
        if marker.is_file():
            run_id = _read_json(marker).get("mlflow_run_id")
            if run_id:
                lineage["parent_run_id"] = str(run_id)
                break
    for manifest in (path.parent / BACKUP_MANIFEST, path.parent.parent / BACKUP_MANIFEST):
        if manifest.is_file():
            metadata = _read_json(manifest).get("metadata")
            metadata = metadata if isinstance(metadata, dict) else {}
            if metadata.get("model") and metadata.get("version"):
                lineage.update(parent_model=str(metadata["model"]), parent_version=str(metadata["version"]))
            if metadata.get("mlflow_run_id") and "parent_run_id" not in lineage:
                lineage["parent_run_id"] = str(metadata["mlflow_run_id"])
            break
    return lineage


def _step(path: Path) -> int:
    tail = path.parent.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _read_json(path: Path) -> dict:
    """A JSON object from a folder that may come from elsewhere; {} for anything else (lineage is a
    record of where a folder came from, never a reason to stop)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}


def recorded_architecture(path: Path) -> str | None:
    """The base_model_architecture the artifact was trained with (from the settings saved beside it)."""
    settings_file = path / SETTINGS_FILE
    if not settings_file.is_file():
        return None
    from trainer.config.yaml_reader import load_yaml

    try:  # a file inside an artifact from elsewhere: read within the bounds of every settings file
        recorded = load_yaml(settings_file.read_bytes(), str(settings_file))
    except (SettingsError, OSError):
        return None
    value = recorded.get("base_model_architecture") if isinstance(recorded, dict) else None
    return value if isinstance(value, str) else None


def tokenizer_fingerprint(folder: Path) -> str | None:
    """A short hash of the tokenizer's vocabulary and special tokens; None when `folder` has none.
    Vocabulary, not file bytes: saving a tokenizer again rewrites its files but not its tokens."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    payload = json.dumps(
        [sorted(tokenizer.get_vocab().items()), tokenizer.bos_token, tokenizer.eos_token], ensure_ascii=False
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def check_compatible(artifact: ResolvedArtifact, settings: Settings, base_model_dir: Path) -> None:
    """SettingsError naming both sides when the artifact was trained on another base or tokenizer."""
    theirs_arch = recorded_architecture(artifact.path)
    ours_arch = settings.base_model_architecture
    theirs_tok = tokenizer_fingerprint(artifact.path)
    ours_tok = tokenizer_fingerprint(base_model_dir) if theirs_tok is not None else None
    arch_differs = theirs_arch is not None and theirs_arch != ours_arch
    tok_differs = theirs_tok is not None and ours_tok is not None and theirs_tok != ours_tok
    if arch_differs or tok_differs:
        raise SettingsError(
            f"trained_artifact: {artifact.source} does not fit this run's base model: it was trained on "
            f"{theirs_arch or 'an unknown architecture'} (tokenizer {theirs_tok or 'unknown'}), this run uses "
            f"{ours_arch} "
            f"from {base_model_dir} (tokenizer {ours_tok or 'unknown'}). Set base_model_architecture"
            f"{f'={theirs_arch}' if theirs_arch else ''} and the base it was trained on, or leave trained_artifact "
            "empty."
        )
    if theirs_arch is None:
        log.warning("trained_artifact %s records no base architecture; only its tokenizer was checked", artifact.source)


def registered_adapter(
    name: str, alias: str, settings: Settings, base_model_dir: Path, download_dir: Path | None
) -> tuple[str | None, Path | None, str]:
    """(version, adapter folder, note) of `models:/name@alias`, checked to fit this run's base. The
    folder is None, with the reason in `note`, when the alias is unset or the model does not fit."""
    from trainer import registry

    version = registry.get_alias_version(name, alias)
    if version is None:
        return None, None, ""
    try:
        artifact = resolve_artifact(f"models:/{name}/{version}", settings, base_model_dir, download_dir)
    except (SettingsError, CheckpointError) as exc:
        return version, None, f"{alias} version {version} not scored: {str(exc).removeprefix('trained_artifact: ')}"
    return version, artifact.path, ""
