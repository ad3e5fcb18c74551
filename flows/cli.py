"""`llm-trainer`: run the pipeline, validate data, list presets and models.

Heavy modules (torch, prefect, mlflow, great_expectations) are imported inside the commands that
need them, so `--help` and a bad setting answer in well under a second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="llm-trainer",
    help="Fine-tune open LLMs with QLoRA: validate -> resolve -> train -> evaluate -> register -> back up.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _load(preset: Optional[str], config: Optional[Path], sets: list[str]):
    from trainer.settings import SettingsError, load_settings

    try:
        return load_settings(preset, config, sets)
    except SettingsError as exc:
        _fail(str(exc))


@app.command()
def run(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of settings (may name a `preset:`)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Start from a preset (see `llm-trainer presets`)."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Override one setting: KEY=VALUE (repeatable)."),
) -> None:
    """Run the whole pipeline. No arguments: the `demo` preset (tiny local model, bundled data)."""
    from trainer.settings import SettingsError

    settings = _load(preset, config, sets)
    try:
        settings.require_training_data()
    except SettingsError as exc:
        _fail(str(exc))

    from trainer.state import apply_environment_defaults

    apply_environment_defaults()
    import logging

    logging.getLogger("llm_trainer").setLevel(logging.INFO)
    from rich.console import Console

    console = Console(stderr=True)
    console.print(
        f"[bold]llm-trainer[/] {settings.element_name}: {settings.base_model_architecture}, "
        f"quantization {settings.quantization_rank}, data {settings.training_data_path}"
    )
    from flows.pipeline import llm_trainer
    from trainer.backup import BackupError
    from trainer.contracts import DataGateError, DataUnusableError

    try:
        summary = llm_trainer(settings)
    except (SettingsError, DataGateError, DataUnusableError, BackupError) as exc:
        _fail(str(exc), 1)
    _print_summary(summary)


def _print_summary(summary) -> None:
    from rich.console import Console
    from rich.table import Table

    from trainer.tracking import ui_command

    table = Table(title="llm-trainer run", show_header=False)
    table.add_row("MLflow run", summary.mlflow_run_id)
    table.add_row("Registered model", f"{summary.model_name} version {summary.model_version} ({', '.join(summary.aliases)})")
    table.add_row("Trained on", f"{summary.device}, quantization {summary.quantization}, {summary.global_step} steps")
    table.add_row("Train loss (mean)", f"{summary.train_loss:.4f}")
    for key, value in summary.eval_metrics.items():
        table.add_row(key, f"{value:.4f}")
    table.add_row("Backup", summary.backup_location)
    table.add_row("Open the MLflow UI", ui_command())
    Console().print(table)


@app.command()
def validate(
    path: Path = typer.Argument(..., help="A data file or a folder of *.jsonl / *.csv files."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the JSON report here (the quarantine file goes beside it)."),
    format: Optional[str] = typer.Option(None, "--format", help="Force a format instead of detecting it per row."),
) -> None:
    """Check data against the contracts. Exit 0: all rows valid; 1: some quarantined; 2: unusable input."""
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from trainer.contracts import DataUnusableError, validate_dataset, write_report

    try:
        result, _ = validate_dataset(path, None, format)
    except DataUnusableError as exc:
        _fail(str(exc), 2)
    if report is not None:
        import json

        write_report(result, report.parent)
        if Path(result.report_path) != report:
            Path(result.report_path).replace(report)
            result.report_path = str(report)
            report.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{path}: {result.rows_valid}/{result.rows_total} rows valid ({result.format}, contract {result.contract_version})")
    for column in ("file", "format", "rows", "valid", "quarantined", "top reasons"):
        table.add_column(column)
    for f in result.files:
        reasons = ", ".join(f"{k} ×{v}" for k, v in sorted(f.top_reasons.items(), key=lambda kv: -kv[1])[:3])
        table.add_row(f.path, f.format or "-", str(f.rows_total), str(f.rows_valid), str(f.rows_quarantined), reasons)
    Console().print(table)
    if report is not None:
        typer.echo(f"report: {result.report_path}\nquarantine: {result.quarantine_path}")
    raise typer.Exit(0 if result.rows_quarantined == 0 else 1)


@app.command()
def presets() -> None:
    """List the presets and what they set."""
    from rich.console import Console
    from rich.table import Table

    from trainer.settings import PRESETS

    table = Table(title="Presets (llm-trainer run --preset NAME)")
    for column in ("preset", "model", "batch", "LR", "quant", "notes"):
        table.add_column(column)
    for name, values in PRESETS.items():
        table.add_row(name, values["base_model_architecture"], str(values["batch_size"]), f"{values['learning_rate']:g}",
                      str(values["quantization_rank"]), values["description"])
    Console().print(table)


@app.command("settings")
def settings_reference(markdown: bool = typer.Option(False, "--markdown", help="Print the README's markdown table.")) -> None:
    """List every setting with its default and description."""
    from trainer.reference import settings_markdown, settings_rows

    if markdown:
        typer.echo(settings_markdown())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Settings (YAML keys, --set KEY=VALUE, Prefect parameters)")
    for column in ("setting", "default", "what it does"):
        table.add_column(column)
    for row in settings_rows():
        table.add_row(*row)
    Console().print(table)


@app.command()
def models() -> None:
    """List the base model architectures of the catalog."""
    from rich.console import Console
    from rich.table import Table

    from trainer.catalog import ARCHITECTURES

    table = Table(title="Base model architectures (base_model_architecture=KEY)")
    for column in ("key", "model", "hub id", "params", "4-bit weights", "use case"):
        table.add_column(column)
    for a in ARCHITECTURES.values():
        params = f"{a.params_billion:.2f} B" if a.params_billion >= 0.1 else f"{a.params_billion * 1000:.1f} M"
        table.add_row(a.key, a.display_name, a.hub_id or "(built locally)", params, f"{a.weights_gib(4):.2f} GiB", a.use_case)
    Console().print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
