from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.identity import run_identity
from tasks.retry import pipeline_task
from trainer.config.settings import Settings
from trainer.redact import redact
from trainer.stages import refine as stage
from trainer.stages.summary import PipelineSummary


@pipeline_task("open-refine-run", 5, 30)
def open_refine_run(settings: Settings) -> str:
    """The parent MLflow run of a refine flow run (found again by its key on a re-run); each stage's
    run is nested under it."""
    run_key, run_name, _ = run_identity(settings)
    return stage.open_refine_run(settings, run_key, run_name)


@pipeline_task("close-refine-run", 5, 30)
def close_refine_run(parent_run_id: str, stages: list[tuple[PipelineSummary, Settings]]) -> str:
    """Summarise both stages on the parent run and in a Prefect artifact; mark the parent finished."""
    markdown = stage.close_refine_run(parent_run_id, stages)
    create_markdown_artifact(key="refine-report", markdown=redact(markdown), description="Two-stage refinement")
    get_run_logger().info("Refinement done: stage versions %s", ", ".join(s.model_version for s, _ in stages))
    return markdown
