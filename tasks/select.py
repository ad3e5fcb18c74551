from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from tasks.validate import DatasetSnapshot
from trainer import tracking
from trainer.refine import with_training_subset
from trainer.selection import load_eval_rows, use_eval_rows
from trainer.settings import Settings


# Only in the flow when eval_data_path or train_subset_fraction is set. Not retried: bad eval data
# does not get better by trying again.
@task(name="select-rows", cache_policy=NONE)
def select_rows(settings: Settings, dataset: DatasetSnapshot) -> DatasetSnapshot:
    """Evaluate on `eval_data_path` instead of the held-out split, and/or train on a seeded subset."""
    logger = get_run_logger()
    if settings.eval_data_path is not None:
        report, eval_rows = load_eval_rows(settings, dataset.output_dir)
        tracking.log_artifact(dataset.run_id, report.report_path, "data/eval")
        tracking.set_tags(dataset.run_id, {"eval_data_path": str(settings.eval_data_path), "eval_data_fingerprint": report.fingerprint})
        dataset, overlap = use_eval_rows(dataset, eval_rows)
        logger.info("Evaluating on %s: %d rows (%d quarantined); %d training rows also in it left out of training",
                    settings.eval_data_path, len(eval_rows), report.rows_quarantined, overlap)
    if settings.train_subset_fraction < 1:
        before = len(dataset.train_examples)
        dataset = with_training_subset(dataset, settings.train_subset_fraction, settings.random_seed)
        logger.info("Training on %d of %d rows (train_subset_fraction=%g)", len(dataset.train_examples), before, settings.train_subset_fraction)
    tracking.log_metrics(dataset.run_id, {"train_rows": len(dataset.train_examples), "eval_rows": len(dataset.eval_examples)})
    return dataset
