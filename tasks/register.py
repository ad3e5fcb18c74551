from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from tasks.validate import DatasetSnapshot
from trainer import tracking
from trainer.assets import ModelAssets
from trainer.evaluation import EvalReport
from trainer.settings import Settings
from trainer.training import TrainResult


@dataclass
class RegisteredModel:
    name: str
    version: str
    model_uri: str
    aliases: list[str]


@task(name="register", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def register_model(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult,
                   report: EvalReport) -> RegisteredModel:
    logger = get_run_logger()
    name = settings.model_name
    existing = tracking.find_version_for_run(name, dataset.run_id)
    if existing is not None:
        # A retried task or re-run flow: this run already has its version; never register twice.
        version = existing
    else:
        version = str(tracking.log_adapter_model(
            dataset.run_id, Path(trained.adapter_dir), Path(assets.base_model_dir), assets.hub_id,
            settings.quantization_bits, settings.max_new_tokens, name,
        ).version)
    tracking.set_version_tags(name, version, {
        "data_fingerprint": dataset.fingerprint, "contract_version": dataset.contract_version,
        "base_model_architecture": settings.base_model_architecture, "flow_run": dataset.run_name,
        **{k: f"{v:.6g}" for k, v in report.metrics().items()},
    })
    aliases = ["challenger"]
    tracking.set_alias(name, "challenger", version)
    if tracking.get_alias_version(name, "champion") in (None, version):
        # The first version becomes champion; later ones wait for the promotion policy.
        tracking.set_alias(name, "champion", version)
        aliases.append("champion")
    logger.info("Registered %s version %s (aliases: %s)", name, version, ", ".join(aliases))
    return RegisteredModel(name=name, version=version, model_uri=f"models:/{name}/{version}", aliases=aliases)
