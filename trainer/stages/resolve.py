"""Resolve: the base model's folder and the trained artifact to start from (checked to fit the
base), with the lineage recorded on the run.

`trained_artifact` may be a checkpoint folder (exact continuation), an adapter folder (warm start:
new optimizer and schedule), or a registered model `models:/name/3`, `models:/name@alias`,
`runs:/id/model` (warm start from its adapter); `trainer.registry.lineage` checks that it fits the
base and records where it came from.
"""

from __future__ import annotations

import logging
from pathlib import Path

from trainer import registry
from trainer.config.settings import Settings
from trainer.errors import SettingsError
from trainer.model.assets import ModelAssets, resolve_base_model
from trainer.model.targets import check_lora_targets
from trainer.registry.lineage import resolve_artifact

log = logging.getLogger("llm_trainer.assets")


def unset_alias_starts_from_base(settings: Settings) -> bool:
    """`trained_artifact_if_unset: start_from_base` and trained_artifact is an alias not set yet."""
    value = settings.trained_artifact
    if settings.trained_artifact_if_unset != "start_from_base" or not value or not value.startswith("models:/"):
        return False
    name, _, alias = registry.parse_model_uri(value)
    if alias is None or not registry.alias_is_unset(name, alias):
        return False
    log.warning(
        "trained_artifact %s is not set (no such model or alias yet): training a fresh adapter from the base "
        "(trained_artifact_if_unset: start_from_base)",
        value,
    )
    return True


def resolve_assets(settings: Settings, download_dir: Path | None = None) -> ModelAssets:
    """The base model folder and the trained artifact to start from; a registry artifact that must
    be downloaded goes to `download_dir` (the run's folder, so a retry reuses it)."""
    base_dir, source = resolve_base_model(settings)
    setting = "base_model_assets_path" if settings.base_model_assets_path else "base_model_architecture"
    _check_weights_present(Path(base_dir), settings.allow_pickle_weights, setting)  # both before any model loads
    check_lora_targets(settings.lora_target_modules, Path(base_dir), settings.trust_remote_code)
    if unset_alias_starts_from_base(settings):
        artifact = None
        lineage = {"parent_note": f"{settings.trained_artifact} was not set: trained from the base"}
    else:
        artifact = resolve_artifact(settings.trained_artifact, settings, base_dir, download_dir)
        lineage = artifact.lineage if artifact is not None else {}
    return ModelAssets(
        base_model_dir=str(base_dir),
        base_source=source,
        hub_id=settings.architecture.hub_id,
        resume_checkpoint=str(artifact.path) if artifact is not None and artifact.kind == "checkpoint" else None,
        warm_start_adapter=str(artifact.path) if artifact is not None and artifact.kind == "adapter" else None,
        trained_artifact=settings.trained_artifact,
        lineage=lineage,
    )


def _check_weights_present(base_dir: Path, allow_pickle_weights: bool, setting: str) -> None:
    """A base folder without loadable weights stops the run here, not minutes later when the model loads."""
    patterns = ("*.safetensors", "*.bin") if allow_pickle_weights else ("*.safetensors",)
    if not any(next(base_dir.glob(pattern), None) for pattern in patterns):
        pickles = next(base_dir.glob("*.bin"), None) is not None
        raise SettingsError(
            f"{setting}: the base model folder {base_dir} has no *.safetensors weights"
            + ("; it has pickled *.bin weights, which load only with allow_pickle_weights=true" if pickles else "")
        )


def resolve_for_run(settings: Settings, run_id: str, parent_run_id: str | None, output_dir: str | None) -> ModelAssets:
    """resolve_assets for this flow run: a registry artifact is downloaded into the run's folder (so a
    retry reuses it), the lineage goes on the MLflow run, and under the refine flow the run is nested
    in its parent run."""
    if parent_run_id:
        registry.set_parent_run(run_id, parent_run_id)
    assets = resolve_assets(settings, download_dir=Path(output_dir) / "parent" if output_dir else None)
    registry.set_tags(
        run_id,
        {
            "base_model_source": assets.base_source,
            "base_model_dir": assets.base_model_dir,
            "trained_artifact": settings.trained_artifact or "",
            **assets.lineage,
        },
    )
    return assets
