"""What a whole pipeline run hands back to its caller (the CLI, the refine flow): one value built
from every stage's result."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer.data.snapshot import DatasetSnapshot
from trainer.evaluate.report import EvalReport
from trainer.model.assets import ModelAssets
from trainer.stages.register import RegisteredModel
from trainer.storage.backup import BackupManifest
from trainer.train.job import TrainResult


@dataclass
class PipelineSummary:
    mlflow_run_id: str
    run_name: str
    model_name: str
    model_version: str
    aliases: list[str]
    backup_location: str
    train_loss: float
    eval_metrics: dict[str, float]
    device: str
    quantization: str
    global_step: int
    promotion: str = ""  # the promotion policy's decision, in words
    lineage: dict[str, str] = field(default_factory=dict)  # parent_model / parent_version / parent_run_id
    train_rows: int = 0
    eval_rows: int = 0  # held-out rows scored (a seeded sample of at most eval_max_rows)
    eval_rows_held_out: int = 0  # held-out rows in all
    merged_dir: str | None = None
    outcome: str = "trained"  # or "unchanged" (skip_if_unchanged: nothing trained; model_version is the champion)


def summarize(
    dataset: DatasetSnapshot,
    assets: ModelAssets,
    trained: TrainResult,
    report: EvalReport,
    registered: RegisteredModel,
    manifest: BackupManifest,
    merged: str | None = None,
) -> PipelineSummary:
    return PipelineSummary(
        mlflow_run_id=dataset.run_id,
        run_name=dataset.run_name,
        model_name=registered.name,
        model_version=registered.version,
        aliases=registered.aliases,
        backup_location=manifest.location,
        train_loss=trained.train_loss,
        eval_metrics=report.all_metrics(),
        device=trained.runtime["device"],
        quantization=trained.runtime["quantization"],
        global_step=trained.global_step,
        promotion=registered.promotion,
        lineage=assets.lineage,
        train_rows=len(dataset.train_examples),
        eval_rows=len(dataset.eval_examples),
        eval_rows_held_out=dataset.eval_rows_held_out or len(dataset.eval_examples),
        merged_dir=merged,
    )


def unchanged_summary(dataset: DatasetSnapshot, name: str, version: str, aliases: list[str], reason: str):
    """The summary of a run that stopped after validation (skip_if_unchanged): the champion it matched."""
    return PipelineSummary(
        mlflow_run_id=dataset.run_id,
        run_name=dataset.run_name,
        model_name=name,
        model_version=version,
        aliases=aliases,
        backup_location="",
        train_loss=float("nan"),
        eval_metrics={},
        device="",
        quantization="",
        global_step=0,
        promotion=reason,
        train_rows=len(dataset.train_examples),
        outcome="unchanged",
    )
