from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.retry import pipeline_task
from trainer import registry
from trainer.config.settings import Settings
from trainer.data.snapshot import DatasetSnapshot
from trainer.redact import redact
from trainer.stages.summary import PipelineSummary, unchanged_summary
from trainer.stages.unchanged import record_unchanged, unchanged_champion


# Only in the flow with skip_if_unchanged. Reads and tags the registry: retried on transient errors.
@pipeline_task("skip-if-unchanged", 5)
def skip_if_unchanged(settings: Settings, dataset: DatasetSnapshot) -> PipelineSummary | None:
    """The run's summary when the champion was trained on the same data with the same training
    settings (the MLflow run is then tagged `outcome=unchanged` and finished); None to train."""
    version = unchanged_champion(settings, dataset)
    if version is None:
        return None
    reason = record_unchanged(settings, dataset, version)
    get_run_logger().info("Unchanged: %s", reason)
    create_markdown_artifact(  # under the run report's key: the one place a user looks for the outcome
        key="run-report",
        markdown=redact(f"# {dataset.run_name}: unchanged\n\nThe {reason}.\n\nMLflow run `{dataset.run_id}`."),
        description=f"{settings.model_name}: unchanged, champion version {version}",
    )
    name = settings.model_name
    return unchanged_summary(dataset, name, version, sorted(registry.model_version(name, version).aliases), reason)
