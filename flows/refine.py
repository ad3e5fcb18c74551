"""The `llm-trainer-refine` flow: two stages of the pipeline, as the guide advises. Composition only.

Stage 1: a subset of the rows at the larger learning rate, registered (it never takes `champion`
by the policy; see trainer/refine.py). Stage 2: all rows at the lower learning rate, for longer,
warm-started from stage 1's registered version (`models:/NAME/VERSION`, so the lineage tags point
at it). Each stage is a `llm-trainer` subflow with its own MLflow run, both nested under this flow
run's parent run; a re-run of this flow reuses a stage that already completed.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow

from flows.pipeline import llm_trainer
from tasks import END_RUN_HOOKS, close_refine_run, open_refine_run
from trainer.config.settings import Settings
from trainer.stages.refine import stage_settings
from trainer.stages.summary import PipelineSummary


@dataclass
class RefineSummary:
    parent_run_id: str
    stages: list[PipelineSummary]

    @property
    def final(self) -> PipelineSummary:
        return self.stages[-1]


@flow(name="llm-trainer-refine", log_prints=True, validate_parameters=True, **END_RUN_HOOKS)
def refine(settings: Settings) -> RefineSummary:
    """Stage 1 on a subset with a larger LR, registered; stage 2 on all rows with a lower LR, for
    longer, from stage 1's registered version. Two nested MLflow runs under one parent."""
    parent_run_id = open_refine_run(settings)
    first, second = stage_settings(settings)
    # Persisted results let a re-run of this flow reuse a completed stage instead of training it again.
    stage1 = llm_trainer.with_options(flow_run_name="refine-stage-1", persist_result=True)(
        first, parent_run_id=parent_run_id
    )
    second = second.model_copy(update={"trained_artifact": f"models:/{stage1.model_name}/{stage1.model_version}"})
    stage2 = llm_trainer.with_options(flow_run_name="refine-stage-2", persist_result=True)(
        second, parent_run_id=parent_run_id
    )
    close_refine_run(parent_run_id, [(stage1, first), (stage2, second)])
    return RefineSummary(parent_run_id=parent_run_id, stages=[stage1, stage2])
