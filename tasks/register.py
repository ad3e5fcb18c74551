from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from tasks.common import registry_lock
from tasks.validate import DatasetSnapshot
from trainer import tracking
from trainer.assets import ModelAssets
from trainer.evaluation import EvalReport
from trainer.promotion import CHALLENGER, CHAMPION, DECISION_TAG, decide_for_run, move_alias
from trainer.settings import Settings
from trainer.training import TrainResult


@dataclass
class RegisteredModel:
    name: str
    version: str
    model_uri: str
    aliases: list[str]
    promotion: str = ""  # the policy's decision, in words
    promoted: bool = False


# Idempotent per flow run: the version is found again by this run's MLflow run id, and a recorded
# promotion decision is repeated, not re-made. A retry after a crash at any point converges on one
# version with one decision.
@task(name="register", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def register_model(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult,
                   report: EvalReport) -> RegisteredModel:
    """Log the adapter as a pyfunc model, register one version per flow run, tag it, alias it
    `challenger`, and move `champion` when the promotion policy passes."""
    with registry_lock(settings.model_name):
        return _register(settings, dataset, assets, trained, report)


def _register(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult,
              report: EvalReport) -> RegisteredModel:
    logger = get_run_logger()
    name = settings.model_name
    version = tracking.find_version_for_run(name, dataset.run_id)
    if version is None:
        version = str(tracking.log_adapter_model(
            dataset.run_id, Path(trained.adapter_dir), Path(assets.base_model_dir), assets.hub_id,
            settings.quantization_bits, settings.max_new_tokens, name,
        ).version)
    else:
        logger.info("Version %s was already registered by this flow run; not registering another", version)
    tracking.set_version_tags(name, version, {
        "data_fingerprint": dataset.fingerprint, "contract_version": dataset.contract_version,
        "base_model_architecture": settings.base_model_architecture, "flow_run": dataset.run_name,
        "settings_hash": tracking.settings_hash(settings), "eval_rows": len(dataset.eval_examples),
        **assets.lineage,
        **{k: f"{v:.6g}" for k, v in report.all_metrics().items()},
    })
    recorded = tracking.model_version(name, version).tags
    if DECISION_TAG in recorded:  # decided by an earlier attempt of this same flow run
        promoted = recorded[DECISION_TAG].startswith("promoted")
        reason = recorded.get("promotion_reason", "")
    else:
        tracking.set_alias(name, CHALLENGER, version)
        current = tracking.get_alias_version(name, CHAMPION)
        if current == version:  # an earlier attempt moved the alias, then stopped before recording why
            promoted, reason = True, "promoted by an earlier attempt of this flow run"
            tracking.set_version_tags(name, version, {DECISION_TAG: "promoted", "promotion_reason": reason})
        else:
            decision = decide_for_run(
                settings.promotion_metric, settings.promotion_direction, settings.min_improvement, settings.auto_promote,
                report.metrics(), report.champion_version, report.baselines.get("champion"), current, "; ".join(report.notes),
            )
            if decision.promote:
                move_alias(name, version, CHAMPION, "promotion policy", decision.reason)
            tracking.set_version_tags(name, version, decision.tags())  # last: marks the register step done
            promoted, reason = decision.promote, decision.reason
    tracking.set_tags(dataset.run_id, {"registered_model": name, "registered_version": version,
                                       DECISION_TAG: "promoted" if promoted else "kept_champion", "promotion_reason": reason})
    aliases = sorted(tracking.model_version(name, version).aliases)
    logger.info("Registered %s version %s (aliases: %s). Promotion: %s", name, version, ", ".join(aliases) or "none", reason)
    return RegisteredModel(name=name, version=version, model_uri=f"models:/{name}/{version}", aliases=aliases,
                           promotion=reason, promoted=promoted)
