from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from tasks.validate import DatasetSnapshot
from trainer import tracking
from trainer.assets import ModelAssets
from trainer.evaluation import EvalReport, evaluate
from trainer.lineage import registered_adapter
from trainer.promotion import CHAMPION
from trainer.report import loss_curve
from trainer.settings import Settings
from trainer.training import TrainResult


@task(name="evaluate", retries=1, retry_delay_seconds=10, cache_policy=NONE)
def evaluate_adapter(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, trained: TrainResult) -> EvalReport:
    """Score the trained adapter on the eval rows and, on the same rows, the base model and the
    current champion; log metrics, the sample table, eval_report.json and the loss curve."""
    logger = get_run_logger()
    output_dir = Path(dataset.output_dir)
    champion_version, champion_dir, note = None, None, ""
    started = time.perf_counter()
    if settings.score_baselines and dataset.eval_examples:
        champion_version, champion_dir, note = registered_adapter(
            settings.model_name, CHAMPION, settings, Path(assets.base_model_dir), output_dir / "champion")
    looked_up = time.perf_counter() - started
    report = evaluate(settings, Path(assets.base_model_dir), Path(trained.adapter_dir), dataset.eval_examples,
                      score_base=settings.score_baselines, champion_adapter_dir=champion_dir, champion_version=champion_version)
    report.baseline_seconds += looked_up  # what the baselines cost: the champion look-up and check, and the scoring
    if note:
        report.notes.append(note)
    if not settings.score_baselines and dataset.eval_examples:
        report.notes.append("score_baselines is off: the base model and the champion were not scored")
    if settings.enable_metrics and report.metrics():
        tracking.log_metrics(dataset.run_id, {**report.all_metrics(), "baseline_seconds": report.baseline_seconds}, step=trained.global_step)
    if report.champion_version:
        tracking.set_tags(dataset.run_id, {"champion_scored": report.champion_version})
    if report.samples:
        tracking.log_table(dataset.run_id, report.samples, "eval/sample_generations.json")
        create_table_artifact(key="sample-generations", table=report.samples,
                              description="Held-out prompts answered by the trained adapter (and the base model and champion)")
    eval_dir = output_dir / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "eval_report.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    tracking.log_artifact(dataset.run_id, eval_dir / "eval_report.json", "eval")
    curve = _loss_curve(settings, dataset, trained, report, eval_dir / "loss_curve.png")
    tracking.log_artifact(dataset.run_id, curve, "report")
    for line in report.notes:
        logger.warning(line)
    logger.info("Held-out: %s", ", ".join(f"{k}={v:.4f}" for k, v in report.all_metrics().items()) or "no eval rows")
    return report


def _loss_curve(settings: Settings, dataset: DatasetSnapshot, trained: TrainResult, report: EvalReport, path: Path) -> Path:
    train = tracking.metric_history(dataset.run_id, "train_loss") if settings.enable_metrics else []
    if not train:  # metrics off: the losses this process saw
        train = [((i + 1) * settings.logging_steps, v) for i, v in enumerate(trained.loss_history)]
    evals = [(s, v) for s, v in tracking.metric_history(dataset.run_id, "eval_loss") if s < trained.global_step] if settings.enable_metrics else []
    if report.eval_loss is not None:
        evals.append((trained.global_step, report.eval_loss))
    baselines = {k: v.get("eval_loss") for k, v in report.baselines.items()}
    return loss_curve(path, train, evals, baselines, f"{dataset.run_name}: loss over iterations")
