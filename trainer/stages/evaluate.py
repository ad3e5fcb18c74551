"""Evaluate: the trained adapter on the eval rows and, on the same rows, the base model and the
current champion; metrics, the samples table, eval_report.json and the loss curve to MLflow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from trainer import registry
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.evaluate.held_out import evaluate
from trainer.evaluate.report import EvalReport
from trainer.model.assets import ModelAssets
from trainer.registry.lineage import registered_adapter
from trainer.registry.promotion import CHAMPION
from trainer.reports.plots import loss_curve
from trainer.train.job import TrainResult


def evaluate_for_run(
    settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult
) -> EvalReport:
    """Score the adapter and the baselines, and record the report on the run (and in <output_dir>/eval)."""
    output_dir = Path(dataset.output_dir)
    champion_version, champion_dir, note = None, None, ""
    started = time.perf_counter()
    if settings.score_baselines and dataset.eval_examples:
        champion_version, champion_dir, note = registered_adapter(
            settings.model_name, CHAMPION, settings, Path(assets.base_model_dir), output_dir / "champion"
        )
    looked_up = time.perf_counter() - started
    report = evaluate(
        settings,
        Path(assets.base_model_dir),
        Path(trained.adapter_dir),
        dataset.eval_examples,
        score_base=settings.score_baselines,
        champion_adapter_dir=champion_dir,
        champion_version=champion_version,
    )
    report.baseline_seconds += looked_up  # what the baselines cost: the champion look-up and check, and the scoring
    if note:
        report.notes.append(note)
    if not settings.score_baselines and dataset.eval_examples:
        report.notes.append("score_baselines is off: the base model and the champion were not scored")
    _record(settings, dataset, trained, report, output_dir / "eval")
    return report


def _record(
    settings: Settings, dataset: DatasetSnapshot, trained: TrainResult, report: EvalReport, eval_dir: Path
) -> None:
    run_id = dataset.run_id
    if settings.enable_metrics and report.metrics():
        registry.log_metrics(
            run_id,
            {
                **report.all_metrics(),
                "baseline_seconds": report.baseline_seconds,
                "eval_generated_rows": report.eval_generated_rows,
            },
            step=trained.global_step,
        )
    if report.champion_version:
        registry.set_tags(run_id, {"champion_scored": report.champion_version})
    if report.samples:
        registry.log_table(run_id, report.samples, "eval/sample_generations.json")
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "eval_report.json").write_text(
        json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    registry.log_artifact(run_id, eval_dir / "eval_report.json", "eval")
    registry.log_artifact(
        run_id, _loss_curve(settings, dataset, trained, report, eval_dir / "loss_curve.png"), "report"
    )


def _loss_curve(
    settings: Settings, dataset: DatasetSnapshot, trained: TrainResult, report: EvalReport, path: Path
) -> Path:
    train = registry.metric_history(dataset.run_id, "train_loss") if settings.enable_metrics else []
    if not train:  # metrics off: the losses this process saw
        train = [((i + 1) * settings.logging_steps, v) for i, v in enumerate(trained.loss_history)]
    evals = []
    if settings.enable_metrics:
        evals = [(s, v) for s, v in registry.metric_history(dataset.run_id, "eval_loss") if s < trained.global_step]
    if report.eval_loss is not None:
        evals.append((trained.global_step, report.eval_loss))
    baselines = {k: v.get("eval_loss") for k, v in report.baselines.items()}
    return loss_curve(path, train, evals, baselines, f"{dataset.run_name}: loss over iterations")
