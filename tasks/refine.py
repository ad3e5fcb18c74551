from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from tasks.common import run_identity
from trainer import tracking
from trainer.settings import Settings


@task(name="open-refine-run", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def open_refine_run(settings: Settings) -> str:
    """The parent MLflow run of a refine flow run (found again by its key on a re-run); each stage's
    run is nested under it."""
    run_key, run_name, _ = run_identity(settings)
    return tracking.get_or_create_run(settings, run_key, f"refine-{run_name}", extra_tags={"llm_trainer.kind": "refine"})


@task(name="close-refine-run", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def close_refine_run(parent_run_id: str, stages: list) -> str:
    """Summarise both stages on the parent run and in a Prefect artifact; mark the parent finished."""
    lines = ["# Refinement", "", "| stage | MLflow run | version | aliases | train rows | LR | eval_loss | promotion |", "|---|---|---|---|---|---|---|---|"]
    for number, (summary, settings) in enumerate(stages, start=1):
        lines.append(f"| {number} | `{summary.mlflow_run_id}` | {summary.model_version} | {', '.join(summary.aliases) or '—'} | "
                     f"{summary.train_rows} | {settings.learning_rate:g} | {summary.eval_metrics.get('eval_loss', float('nan')):.4f} | "
                     f"{summary.promotion} |")
        tracking.log_metrics(parent_run_id, {f"stage{number}_{k}": v for k, v in summary.eval_metrics.items()})
    last = stages[-1][0]
    tracking.set_tags(parent_run_id, {"registered_model": last.model_name, "registered_version": last.model_version,
                                      "stage_versions": ",".join(s.model_version for s, _ in stages)})
    markdown = "\n".join(lines) + "\n"
    tracking.log_text(parent_run_id, markdown, "report/refine_report.md")
    create_markdown_artifact(key="refine-report", markdown=markdown, description="Two-stage refinement")
    tracking.finish_run(parent_run_id)
    get_run_logger().info("Refinement done: stage versions %s", ", ".join(s.model_version for s, _ in stages))
    return markdown
