"""`skip_if_unchanged`: stop after validation when training would only make a copy of the champion.

"Unchanged" means that the champion version's tags match this run: `data_fingerprint` (every data
file's bytes and name), `contract_version`, and `training_hash`, a hash of the settings that change
the trained weights and of the content of the folders they name (the base model: config, tokenizer,
chat template, weights; a local `trained_artifact`: trainer/storage/fingerprint.py), so an edited chat
template at the same path is a change. Left out of that hash (NOT_TRAINING): names, outputs, evaluation, promotion,
gates and bookkeeping. A setting not listed there counts as one that changes training, so a setting
added later errs on the side of training again.

The parent is compared as the `trained_artifact` setting names it: `models:/NAME@champion` is the
same setting after the alias has moved, since continuing from the champion on the very rows it was
trained on would only repeat that training; a different folder or version is a different setting. A
version registered without a `training_hash` tag (before this setting existed) never matches: the
first run with it trains.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from trainer import registry
from trainer.config.settings import Settings
from trainer.data.contracts.intake import fingerprint_path
from trainer.data.snapshot import DatasetSnapshot
from trainer.errors import SettingsError
from trainer.registry.uris import REGISTRY_SCHEMES
from trainer.storage.fingerprint import folder_fingerprint

log = logging.getLogger("llm_trainer.unchanged")

TRAINING_HASH_TAG = "training_hash"
OUTCOME_TAG = "outcome"
MATCHED_TAG = "unchanged_champion_version"

NOT_TRAINING = frozenset(
    {
        # names and bookkeeping
        "element_name",
        "version",
        "running_on",
        "registered_model_name",
        "experiment_name",
        "enable_metrics",
        "logging_steps",
        "skip_if_unchanged",
        # outputs and storage
        "output_dir",
        "artifact_backup_save_path",
        "save_every_n_iterations",
        "keep_last_n_checkpoints",
        "export_merged",
        # how the same computation runs (same loss, same gradients)
        "rdzv_endpoint",
        "chunked_loss",
        "activation_offloading",
        "tokenize_processes",
        # evaluation, promotion and the data gates
        "eval_every_n_iterations",
        "num_sample_generations",
        "eval_max_rows",
        "eval_generation_rows",
        "max_new_tokens",
        "score_baselines",
        "promotion_metric",
        "promotion_direction",
        "min_improvement",
        "auto_promote",
        "min_valid_rows",
        "max_invalid_fraction",
    }
)


def training_hash(settings: Settings) -> str:
    """A short hash of what changes the trained weights: the settings (redacted values, as recorded)
    and the content of the folders they name, the base model's and a local trained artifact's."""
    params = {k: v for k, v in registry.settings_params(settings).items() if k not in NOT_TRAINING}
    if settings.eval_data_path is not None:  # its rows are left out of training: its content counts too
        params["eval_data_fingerprint"] = fingerprint_path(settings.eval_data_path)
    params["base_model_content"] = _base_model_content(settings)
    artifact = settings.trained_artifact
    # Local exactly when resolve_artifact reads it as local (trainer/registry/lineage.py).
    if artifact and not str(artifact).startswith(REGISTRY_SCHEMES) and Path(artifact).exists():
        params["trained_artifact_content"] = folder_fingerprint(Path(artifact))
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _base_model_content(settings: Settings) -> str:
    """The base model folder's content (config, tokenizer, chat template, weights' manifest): the folder
    the tokenizer loads from, which is the whole model for a local folder, the tiny model or a Hugging
    Face cache snapshot. A hub model not on this machine counts by its id (it is fetched at train time)."""
    from trainer.model.assets import resolve_tokenizer_dir

    try:
        return folder_fingerprint(resolve_tokenizer_dir(settings))
    except SettingsError:
        return f"unresolved:{settings.architecture.hub_id}"


def unchanged_champion(settings: Settings, dataset: DatasetSnapshot) -> str | None:
    """The champion version this run would copy (same data, contract and training settings), or None."""
    name = settings.model_name
    version = registry.get_alias_version(name, "champion")
    if version is None:
        return None
    tags = registry.model_version(name, version).tags
    wanted = {
        "data_fingerprint": dataset.fingerprint,
        "contract_version": dataset.contract_version,
        TRAINING_HASH_TAG: dataset.training_hash,
    }
    differs = [key for key, value in wanted.items() if tags.get(key) != value]
    if differs:
        log.info("skip_if_unchanged: %s differs from champion version %s: training", ", ".join(differs), version)
        return None
    return version


def record_unchanged(settings: Settings, dataset: DatasetSnapshot, version: str) -> str:
    """Tag this run's MLflow run `outcome=unchanged`, naming the champion version it matched, and finish
    it; the sentence that says why nothing was trained."""
    reason = (
        f"data, contract and training settings are those of {settings.model_name} version {version} (champion): "
        "nothing trained, nothing registered (skip_if_unchanged)"
    )
    registry.set_tags(dataset.run_id, {OUTCOME_TAG: "unchanged", MATCHED_TAG: version, "outcome_reason": reason})
    registry.finish_run(dataset.run_id)
    return reason
