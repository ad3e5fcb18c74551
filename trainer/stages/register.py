"""Register: log the adapter as a pyfunc model, register one version per flow run, tag it, alias it
`challenger`, and record the promotion policy's decision. The `champion` alias does not move here:
it moves in the promote stage, once the backup is verified (a champion always has a backup).

A model whose training loss or eval metrics are not finite (it diverged) is not registered at all:
NonFiniteError, one line, the flow fails and the old champion stays.

Idempotent per flow run: the version is found again by this run's MLflow run id, and a recorded
promotion decision is repeated, not re-made. A retry after a crash at any point converges on one
version with one decision. The caller holds a per-model lock around it (see tasks/register.py),
so two runs never decide against the same champion at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from trainer import registry
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.errors import NonFiniteError
from trainer.evaluate.report import EvalReport
from trainer.model.assets import ModelAssets
from trainer.registry.promotion import CHALLENGER, CHAMPION, DECISION_TAG, PROMOTE_AFTER_BACKUP, decide_for_run
from trainer.stages.unchanged import TRAINING_HASH_TAG
from trainer.train.job import TrainResult

log = logging.getLogger("llm_trainer.stages")


@dataclass
class RegisteredModel:
    name: str
    version: str
    model_uri: str
    aliases: list[str]
    promotion: str = ""  # the policy's decision, in words
    promoted: bool = False  # at registration: the policy promotes (after the backup); after promote: it did


def check_finite(trained: TrainResult, report: EvalReport) -> None:
    """NonFiniteError naming the first NaN / infinite number among the training loss and the eval
    metrics (the new adapter's; a baseline's own score does not make this model bad)."""
    values = {"train_loss": trained.train_loss, **report.metrics()}
    bad = {k: v for k, v in values.items() if v is not None and not math.isfinite(v)}
    if bad:
        listed = ", ".join(f"{k} {v}" for k, v in bad.items())
        raise NonFiniteError(
            f"not registered: {listed} (training diverged); the champion stays. Lower learning_rate (or lora_alpha)"
        )


def register_for_run(
    settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult, report: EvalReport
) -> RegisteredModel:
    check_finite(trained, report)
    name = settings.model_name
    version = registry.find_version_for_run(name, dataset.run_id)
    if version is None:
        version = str(
            registry.log_adapter_model(
                dataset.run_id,
                Path(trained.adapter_dir),
                Path(assets.base_model_dir),
                assets.hub_id,
                settings.quantization_bits,
                settings.max_new_tokens,
                name,
            ).version
        )
    else:
        log.info("Version %s was already registered by this flow run; not registering another", version)
    registry.set_version_tags(
        name,
        version,
        {
            "data_fingerprint": dataset.fingerprint,
            "contract_version": dataset.contract_version,
            "base_model_architecture": settings.base_model_architecture,
            "flow_run": dataset.run_name,
            "settings_hash": registry.settings_hash(settings),
            TRAINING_HASH_TAG: dataset.training_hash,
            "eval_rows": len(dataset.eval_examples),
            **assets.lineage,
            **{k: f"{v:.6g}" for k, v in report.all_metrics().items()},
        },
    )
    promote, reason = _decision(settings, name, version, report)
    registry.set_tags(
        dataset.run_id,
        {
            "registered_model": name,
            "registered_version": version,
            DECISION_TAG: PROMOTE_AFTER_BACKUP if promote else "kept_champion",
            "promotion_reason": reason,
        },
    )
    return RegisteredModel(
        name=name,
        version=version,
        model_uri=f"models:/{name}/{version}",
        aliases=sorted(registry.model_version(name, version).aliases),
        promotion=reason,
        promoted=promote,
    )


def _decision(settings: Settings, name: str, version: str, report: EvalReport) -> tuple[bool, str]:
    """(promote, reason): the decision an earlier attempt of this flow run recorded, or a new one,
    recorded on the version (`promote_after_backup` or `kept_champion`)."""
    recorded = registry.model_version(name, version).tags
    if DECISION_TAG in recorded:  # decided by an earlier attempt of this same flow run
        return recorded[DECISION_TAG] in ("promoted", PROMOTE_AFTER_BACKUP), recorded.get("promotion_reason", "")
    registry.set_alias(name, CHALLENGER, version)
    current = registry.get_alias_version(name, CHAMPION)
    decision = decide_for_run(
        settings.promotion_metric,
        settings.promotion_goal,
        settings.min_improvement,
        settings.auto_promote,
        report.metrics(),
        report.champion_version,
        report.baselines.get("champion"),
        current,
        "; ".join(report.notes),
    )
    tags = decision.tags()
    if decision.promote:
        tags[DECISION_TAG] = PROMOTE_AFTER_BACKUP
        tags["promotion_compared_with"] = current or ""  # promote checks the champion is still this one
    registry.set_version_tags(name, version, tags)  # last: marks the register step done
    return decision.promote, decision.reason
