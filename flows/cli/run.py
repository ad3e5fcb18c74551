"""`llm-trainer run` and `llm-trainer refine`: the pipeline in this process (or sent to a work pool)."""

from __future__ import annotations

from flows.cli.app import ConfigOption, PresetOption, SetOption, app, fail, load_for_training, print_table


def _expected_errors() -> tuple[type[Exception], ...]:
    """What a training command turns into one `error:` line (exit 1) instead of a traceback."""
    from trainer.errors import PipelineError

    return (PipelineError,)


@app.command()
def run(config: ConfigOption = None, preset: PresetOption = None, sets: SetOption = []) -> None:  # noqa: B006
    """Run the whole pipeline. No arguments: the `demo` preset (tiny local model, bundled data).

    With running_on=POOL and PREFECT_API_URL set, the run goes to the llm-trainer deployment on that work pool instead
    (see `submit` and docs/operations.md)."""
    settings = load_for_training(preset, config, sets)
    if settings.running_on != "local" and _submitted_to_running_on(settings):
        return
    from rich.console import Console

    Console(stderr=True).print(
        f"[bold]llm-trainer[/] {settings.element_name}: {settings.base_model_architecture}, "
        f"quantization {settings.quantization_rank}, data {settings.training_data_path}"
    )
    from flows.pipeline import llm_trainer

    try:
        summary = llm_trainer(settings)
    except _expected_errors() as exc:
        fail(str(exc), 1)
    print_summary(summary)


@app.command()
def refine(config: ConfigOption = None, preset: PresetOption = None, sets: SetOption = []) -> None:  # noqa: B006
    """Two-stage refinement: a subset at a larger LR, then all rows at a lower LR from stage 1's version.

    Stage 1 trains on refine_subset_fraction of the rows at learning_rate and is registered; stage 2 trains on all rows
    at refine_learning_rate (default: a tenth), for refine_max_steps (default: twice as long), warm-started from stage
    1's registered version. Two MLflow runs nested under one parent run."""
    settings = load_for_training(preset, config, sets)
    from flows.refine import refine as refine_flow

    try:
        summary = refine_flow(settings)
    except _expected_errors() as exc:
        fail(str(exc), 1)
    for stage in summary.stages:
        print_summary(stage)
    import typer

    typer.echo(f"Refinement parent MLflow run: {summary.parent_run_id}")


def print_summary(summary) -> None:
    """The table that ends `run`: where the run, its artifacts, the model and the backup are, and its
    metrics. Every cell is redacted (a tracking URI may carry a password)."""
    from trainer import registry
    from trainer.redact import redact
    from trainer.registry.client import ui_command

    if summary.outcome == "unchanged":  # skip_if_unchanged: nothing was trained, say why and what is current
        rows = [
            ("MLflow run", f"{summary.mlflow_run_id} (outcome=unchanged)"),
            ("Unchanged", summary.promotion),
            ("Current model", f"{summary.model_name} version {summary.model_version} ({', '.join(summary.aliases)})"),
            ("Open the MLflow UI", ui_command()),
        ]
        print_table(("", ""), [(k, redact(v)) for k, v in rows], title="llm-trainer run", show_header=False)
        return
    rows = [
        ("MLflow run", summary.mlflow_run_id),
        ("MLflow artifacts", registry.artifact_location(summary.mlflow_run_id)),
        ("Registered model", f"{summary.model_name} version {summary.model_version} ({', '.join(summary.aliases)})"),
        ("Trained on", f"{summary.device}, quantization {summary.quantization}, {summary.global_step} steps"),
        ("Train loss (mean)", f"{summary.train_loss:.4f}"),
        ("Rows", f"{summary.train_rows} to train, {summary.eval_rows} of {summary.eval_rows_held_out} held out scored"),
        *((key, f"{value:.4f}") for key, value in summary.eval_metrics.items()),
        ("Backup", summary.backup_location),
        ("Open the MLflow UI", ui_command()),
    ]
    print_table(("", ""), [(key, redact(value)) for key, value in rows], title="llm-trainer run", show_header=False)


def _submitted_to_running_on(settings) -> bool:
    """`run` with running_on=POOL: with PREFECT_API_URL set, submit to the deployment on that work
    pool and return True; without it, say so in one line and return False (the run stays here)."""
    import typer

    from flows.submit import SubmitError, api_url, submit_settings

    if not api_url():
        typer.echo(
            f"running_on={settings.running_on}: PREFECT_API_URL is not set, so this run trains here, in this process",
            err=True,
        )
        return False
    try:
        submit_settings(settings, echo=lambda line: typer.echo(line, err=True))
    except SubmitError as exc:
        fail(str(exc), 1)
    return True
