from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from tasks.common import retry_transient
from tasks.validate import DatasetSnapshot
from trainer import tracking
from trainer.assets import ModelAssets
from trainer.distributed import launch, planned_processes
from trainer.settings import Settings
from trainer.training import TrainResult, train


# A retry continues from the latest valid checkpoint in this flow run's output folder (the
# trainer looks there first), so a crash costs at most save_every_n_iterations steps.
@task(name="train", retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=retry_transient, cache_policy=NONE)
def train_adapter(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets) -> TrainResult:
    logger = get_run_logger()
    common = dict(
        base_model_dir=Path(assets.base_model_dir),
        train_examples=dataset.train_examples,
        output_dir=Path(dataset.output_dir),
        resume_from=Path(assets.resume_checkpoint) if assets.resume_checkpoint else None,
        warm_start_adapter=Path(assets.warm_start_adapter) if assets.warm_start_adapter else None,
        eval_examples=dataset.eval_examples,
        checkpoint_meta={"mlflow_run_id": dataset.run_id, "data_fingerprint": dataset.fingerprint},
    )
    if planned_processes(settings) > 1:
        # torchrun + the Trainer's DDP; rank 0 logs to this run's MLflow run itself.
        result = launch(settings, **common, metrics_run_id=dataset.run_id, log_line=logger.info)
    else:
        sink = tracking.metrics_sink(dataset.run_id) if settings.enable_metrics else None
        try:
            result = train(settings, **common, metrics_sink=sink)
        finally:  # a failed attempt's metrics are kept too (the retry logs from its resume step on)
            tracking.flush()
    tracking.set_tags(dataset.run_id, {
        "device": result.runtime["device"], "compute_dtype": result.runtime["compute_dtype"],
        "quantization": result.runtime["quantization"], "resumed_from": result.resumed_from or "",
        "batching": result.runtime.get("batching", ""), "training_processes": result.runtime.get("processes", "1"),
        "output_dir": result.output_dir,
    })
    tracking.log_metrics(dataset.run_id, {
        "final_train_loss": result.train_loss, "train_seconds": result.seconds, "train_examples": result.train_examples,
        "rows_too_long": result.rows_too_long, "trainable_parameters": result.trainable_parameters,
        "padding_fraction": result.padding_fraction,
    }, step=result.global_step)
    logger.info("Trained %d steps in %.1fs on %s: mean train loss %.4f; adapter in %s",
                result.global_step, result.seconds, result.runtime["device"], result.train_loss, result.adapter_dir)
    return result
