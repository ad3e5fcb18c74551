"""Train: the job built from the validated rows and the resolved assets, run in this process or,
with several processes, under torchrun; metrics to the flow's MLflow run.

A retry (same output folder) continues from the latest valid checkpoint there, so a crash costs at
most save_every_n_iterations steps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trainer import registry
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.model.assets import ModelAssets
from trainer.train.distributed import launch, planned_processes
from trainer.train.job import TrainJob, TrainResult
from trainer.train.loop import train


def train_job(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets) -> TrainJob:
    return TrainJob(
        settings=settings,
        base_model_dir=Path(assets.base_model_dir),
        train_examples=dataset.train_examples,
        output_dir=Path(dataset.output_dir),
        eval_examples=dataset.eval_examples,
        resume_from=Path(assets.resume_checkpoint) if assets.resume_checkpoint else None,
        warm_start_adapter=Path(assets.warm_start_adapter) if assets.warm_start_adapter else None,
        checkpoint_meta={"mlflow_run_id": dataset.run_id, "data_fingerprint": dataset.fingerprint},
        metrics_run_id=dataset.run_id if settings.enable_metrics else None,
    )


def train_for_run(
    settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets, log_line: Callable[[str], None] | None = None
) -> TrainResult:
    """Train, record what ran (device, dtype, quantization, batching) and the run's totals on MLflow."""
    job = train_job(settings, dataset, assets)
    if planned_processes(settings) > 1:
        result = launch(job, log_line=log_line)  # torchrun + the Trainer's DDP; rank 0 logs to MLflow itself
    else:
        sink = registry.metrics_sink(dataset.run_id) if settings.enable_metrics else None
        try:
            result = train(job, metrics_sink=sink)
        finally:  # a failed attempt's metrics are kept too (the retry logs from its resume step on)
            registry.flush()
    registry.set_tags(
        dataset.run_id,
        {
            "device": result.runtime["device"],
            "compute_dtype": result.runtime["compute_dtype"],
            "quantization": result.runtime["quantization"],
            "resumed_from": result.resumed_from or "",
            "batching": result.runtime.get("batching", ""),
            "training_processes": result.runtime.get("processes", "1"),
            "train_rows_prepared": result.rows_prepared,
            "output_dir": result.output_dir,
        },
    )
    registry.log_metrics(
        dataset.run_id,
        {
            "final_train_loss": result.train_loss,
            "train_seconds": result.seconds,
            "train_examples": result.train_examples,
            "rows_too_long": result.rows_too_long,
            "trainable_parameters": result.trainable_parameters,
            "padding_fraction": result.padding_fraction,
            "prepare_seconds": result.prepare_seconds,
        },
        step=result.global_step,
    )
    return result
