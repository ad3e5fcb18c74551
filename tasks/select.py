from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.stages.select import select_rows as select


# Only in the flow when eval_data_path or train_subset_fraction is set. Not retried: bad eval data
# does not get better by trying again.
@task(name="select-rows", cache_policy=NONE)
def select_rows(settings: Settings, dataset: DatasetSnapshot) -> DatasetSnapshot:
    """Evaluate on `eval_data_path` instead of the held-out split, and/or train on a seeded subset."""
    selection = select(settings, dataset)
    for note in selection.notes:
        get_run_logger().info(note)
    return selection.dataset
