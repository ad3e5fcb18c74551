from __future__ import annotations

from prefect import get_run_logger

from tasks.retry import pipeline_task
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.model.assets import ModelAssets
from trainer.stages.train import train_for_run
from trainer.train.job import TrainResult


# A retry continues from the latest valid checkpoint in this flow run's output folder (the
# trainer looks there first), so a crash costs at most save_every_n_iterations steps.
@pipeline_task("train", 10, 60)
def train_adapter(settings: Settings, dataset: DatasetSnapshot, assets: ModelAssets) -> TrainResult:
    logger = get_run_logger()
    result = train_for_run(settings, dataset, assets, log_line=logger.info)
    logger.info(
        "Trained %d steps in %.1fs on %s: mean train loss %.4f; adapter in %s",
        result.global_step, result.seconds, result.runtime["device"], result.train_loss, result.adapter_dir,
    )  # fmt: skip
    return result
