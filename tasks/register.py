from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger

from tasks.retry import pipeline_task
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.evaluate.report import EvalReport
from trainer.model.assets import ModelAssets
from trainer.stages.register import RegisteredModel, register_for_run
from trainer.train.job import TrainResult


# Idempotent per flow run (see trainer/stages/register.py): a retry converges on one version with
# one promotion decision.
@pipeline_task("register", 5, 30)
def register_model(
    settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult, report: EvalReport
) -> RegisteredModel:
    """Log the adapter as a pyfunc model, register one version per flow run, tag it, alias it
    `challenger`, and record the promotion decision (`champion` moves after the backup: promote_model).
    A diverged model (NaN / infinite loss or metrics) is not registered: NonFiniteError, not retried."""
    with registry_lock(settings.model_name):
        registered = register_for_run(settings, dataset, assets, trained, report)
    get_run_logger().info(
        "Registered %s version %s (aliases: %s). Promotion: %s%s",
        registered.name, registered.version, ", ".join(registered.aliases) or "none", registered.promotion,
        " (champion once the backup is verified)" if registered.promoted else "",
    )  # fmt: skip
    return registered


@contextmanager
def registry_lock(model_name: str, timeout_seconds: float = 1800) -> Iterator[None]:
    """One registration (and promotion decision) at a time per registered model, across every
    deployment and ad hoc run that talks to this Prefect API.

    A deployment's `concurrency_limit` only serialises runs of that one deployment; the scheduled
    and the ad hoc deployment of one model could otherwise both read the same champion and both
    promote. A Prefect global concurrency limit of 1 named after the model closes that; it is
    created on first use (Prefect no longer creates limits implicitly).
    """
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    name = "llm-trainer-register-" + re.sub(r"[^A-Za-z0-9._-]", "-", model_name)
    # ObjectAlreadyExists: created by a concurrent run between the read and the create.
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, 1)
    with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, strict=True):
        yield
