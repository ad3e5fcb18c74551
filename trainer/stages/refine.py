"""Two-stage refinement, as the configuration guide advises: "start with a small dataset and a larger
LR, then lower the LR and train longer on the full data".

Stage 1 trains on `refine_subset_fraction` of the training rows at `learning_rate` for `max_steps`
and is registered; stage 2 warm-starts from stage 1's *registered version* and trains on all rows
at `refine_learning_rate` (default: a tenth) for `refine_max_steps` (default: twice as long). Both
use the same eval rows, so their metrics compare. Stage 1 is an intermediate: it does not take the
champion alias by the policy (auto_promote off), except as the first version of a new model; stage 2
follows the promotion policy like any run.
"""

from __future__ import annotations

from trainer import registry
from trainer.config.settings import Settings
from trainer.stages.summary import PipelineSummary


def stage_settings(settings: Settings) -> tuple[Settings, Settings]:
    """(stage 1, stage 2) settings; stage 2's trained_artifact is filled in once stage 1 is registered.
    Both stages train: stage 2 continues from stage 1's version, so neither can be skipped as unchanged."""
    first = settings.model_copy(
        update={
            "train_subset_fraction": settings.refine_subset_fraction,
            "auto_promote": False,
            "skip_if_unchanged": False,
        }
    )
    steps = settings.refine_max_steps or (2 * settings.max_steps if settings.max_steps else None)
    second = settings.model_copy(
        update={
            "skip_if_unchanged": False,
            "train_subset_fraction": 1.0,
            "learning_rate": settings.refine_learning_rate or float(f"{settings.learning_rate / 10:.6g}"),
            "max_steps": steps,
            "num_epochs": settings.num_epochs if steps else 2 * settings.num_epochs,
        }
    )
    return first, second


def open_refine_run(settings: Settings, run_key: str, run_name: str) -> str:
    """The parent MLflow run of a refine flow run (found again by its key on a re-run)."""
    return registry.get_or_create_run(
        settings, run_key, f"refine-{run_name}", extra_tags={"llm_trainer.kind": "refine"}
    )


def close_refine_run(parent_run_id: str, stages: list[tuple[PipelineSummary, Settings]]) -> str:
    """Summarise both stages on the parent run; mark it finished."""
    lines = [
        "# Refinement",
        "",
        "| stage | MLflow run | version | aliases | train rows | LR | eval_loss | promotion |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, (summary, settings) in enumerate(stages, start=1):
        eval_loss = summary.eval_metrics.get("eval_loss", float("nan"))
        lines.append(
            f"| {number} | `{summary.mlflow_run_id}` | {summary.model_version} | {', '.join(summary.aliases) or '—'} | "
            f"{summary.train_rows} | {settings.learning_rate:g} | {eval_loss:.4f} | {summary.promotion} |"
        )
        registry.log_metrics(parent_run_id, {f"stage{number}_{k}": v for k, v in summary.eval_metrics.items()})
    last = stages[-1][0]
    registry.set_tags(
        parent_run_id,
        {
            "registered_model": last.model_name,
            "registered_version": last.model_version,
            "stage_versions": ",".join(s.model_version for s, _ in stages),
        },
    )
    markdown = "\n".join(lines) + "\n"
    registry.log_text(parent_run_id, markdown, "report/refine_report.md")
    registry.finish_run(parent_run_id)
    return markdown
