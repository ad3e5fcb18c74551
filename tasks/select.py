from __future__ import annotations

from prefect import get_run_logger

from tasks.retry import pipeline_task
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.stages.select import select_rows as select


# Only in the flow when eval_data_path or train_subset_fraction is set. Not retried: bad eval data
# does not get better by trying again.
@pipeline_task("select-rows")
def select_rows(settings: Settings, dataset: DatasetSnapshot) -> DatasetSnapshot:
    """Evaluate on `eval_data_path` instead of the held-out split, and/or train on a seeded subset."""
    selection = select(settings, dataset)
    for note in selection.notes:
        get_run_logger().info(note)
    return selection.dataset
