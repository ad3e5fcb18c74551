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


def _load_for_training(preset: Optional[str], config: Optional[Path], sets: list[str]):
    """Settings for a training command: loaded, training data required, quiet environment set."""
    import logging

    from trainer.settings import SettingsError
    from trainer.state import apply_environment_defaults

    settings = _load(preset, config, sets)
    try:
        settings.require_training_data()
    except SettingsError as exc:
        _fail(str(exc))
    apply_environment_defaults()
    logging.getLogger("llm_trainer").setLevel(logging.INFO)
    return settings


@app.command()
def run(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of settings (may name a `preset:`)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Start from a preset (see `llm-trainer presets`)."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Override one setting: KEY=VALUE (repeatable)."),
) -> None:
    """Run the whole pipeline. No arguments: the `demo` preset (tiny local model, bundled data).

    With running_on=POOL and PREFECT_API_URL set, the run goes to the llm-trainer deployment on that work pool instead
    (see `submit` and docs/operations.md)."""
    settings = _load_for_training(preset, config, sets)
    if settings.running_on != "local" and _submitted_to_running_on(settings):
        return
    from rich.console import Console

    console = Console(stderr=True)
    console.print(
        f"[bold]llm-trainer[/] {settings.element_name}: {settings.base_model_architecture}, "
        f"quantization {settings.quantization_rank}, data {settings.training_data_path}"
    )
    from flows.pipeline import llm_trainer
    from trainer.backup import BackupError
    from trainer.contracts import DataGateError, DataUnusableError
    from trainer.settings import SettingsError

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
    path: Path = typer.Argument(..., help="A data file or a folder of *.jsonl / *.csv files (subfolders included)."),
    report: Optional[Path] = typer.Option(
        None, "--report", help="Write the JSON report here; every quarantined row, with its raw bytes, goes beside it in NAME.quarantine.jsonl."
    ),
    format: Optional[str] = typer.Option(
        None, "--format", help="Force one format for every file: chat, sharegpt, instruction, prompt_completion or text (default: detected per file)."
    ),
    maps: list[str] = typer.Option([], "--map", help="Rename a column / top-level field before detection: SOURCE=TARGET, e.g. question=prompt (repeatable)."),
    max_seq_length: Optional[int] = typer.Option(
        None, "--max-seq-length", min=1, help="Also tokenize each valid row as training will and report rows longer than this (default: no token check)."
    ),
    model: str = typer.Option(
        "tiny-llama", "--model", help="Whose tokenizer counts for --max-seq-length: an architecture (see `llm-trainer models`) or a local model folder."
    ),
    overlong: str = typer.Option("warn", "--overlong", help="Rows over --max-seq-length: warn (report only) or quarantine (reason too_many_tokens)."),
) -> None:
    """Check data against the contracts. Exit 0: every row valid; 1: some rows quarantined; 2: unusable input
    (missing path, no data files or rows, unreadable file, formats that can't be mixed)."""
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from trainer.contracts import ContractError, DataUnusableError, validate_dataset, write_report
    from trainer.settings import SettingsError, build_settings

    flags = {"dataset_format": "--format", "overlong_rows": "--overlong", "column_mapping": "--map", "base_model_architecture": "--model"}
    values: dict = {"dataset_format": format, "overlong_rows": overlong, "column_mapping": {}}
    for pair in maps:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            _fail(f"--map {pair!r}: expected SOURCE=TARGET, e.g. --map question=prompt")
        values["column_mapping"][source.strip()] = target.strip()
    if max_seq_length is not None:
        values["base_model_assets_path" if Path(model).is_dir() else "base_model_architecture"] = model
    def flagged(exc: Exception) -> str:  # the pipeline's setting messages, named by this command's flags
        setting, _, rest = str(exc).partition(":")
        name, _, key = setting.partition(".")
        return f"{flags[name]}{' ' + key if key else ''}:{rest}" if name in flags else str(exc)

    try:
        settings = build_settings(values)
    except SettingsError as exc:
        _fail(flagged(exc))
    tokenizer = None
    if max_seq_length is not None:
        from trainer.assets import load_counting_tokenizer, resolve_tokenizer_dir

        try:
            tokenizer = load_counting_tokenizer(resolve_tokenizer_dir(settings), settings.trust_remote_code)
        except SettingsError as exc:
            _fail(flagged(exc))
        except (OSError, ValueError) as exc:
            _fail(f"--model {model}: can't load its tokenizer ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    quarantine = report.with_suffix(".quarantine.jsonl") if report is not None else None
    if report is not None and path.is_dir() and any(p.resolve().is_relative_to(path.resolve()) for p in (report, quarantine)):
        _fail(f"--report {report}: inside the data folder, where the next validation would read it as data; write it elsewhere")
    try:
        result, _ = validate_dataset(
            path, None, settings.dataset_format, column_mapping=settings.column_mapping,
            tokenizer=tokenizer, max_seq_length=max_seq_length, overlong_rows=settings.overlong_rows,
        )
    except (DataUnusableError, ContractError) as exc:
        _fail(str(exc), 2)
    if report is not None:
        try:
            write_report(result, report_path=report, quarantine_path=quarantine)
        except OSError as exc:
            _fail(f"--report {report}: can't write it ({exc.strerror or exc})", 2)

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)  # soft wrap: long lines stay whole, for grep and logs
    console.print(f"{path}: {result.rows_valid}/{result.rows_total} rows valid, {result.rows_quarantined} quarantined "
                  f"(format {result.format}, contract {result.contract_version})", markup=False)
    table = Table()
    for column in ("file", "format", "rows", "valid", "quarantined", "top reasons"):
        table.add_column(column, justify="right" if column in ("rows", "valid", "quarantined") else "left")
    for f in result.files:
        reasons = ", ".join(f"{k} ×{v}" for k, v in list(f.top_reasons.items())[:3])
        table.add_row(f.path, f.format or "-", str(f.rows_total), str(f.rows_valid), str(f.rows_quarantined), reasons)
    console.print(table)
    shown = 10
    for q in result.quarantined[:shown]:
        console.print(f"  {q.file}:{q.line}  {q.reason}: {q.detail}", markup=False)
    if result.rows_quarantined > shown:
        console.print(f"  ... {result.rows_quarantined - shown} more" + (f" in {result.quarantine_path}" if report else " (--report writes them all)"))
    if result.ignored_files:
        console.print(f"ignored (not *.jsonl / *.csv): {', '.join(result.ignored_files[:10])}{', ...' if len(result.ignored_files) > 10 else ''}", markup=False)
    if tokenizer is not None:
        console.print(f"tokens ({result.tokenizer}): longest row {result.max_tokens}; {result.rows_overlong} rows over {max_seq_length}"
                      + (f" ({'quarantined' if overlong == 'quarantine' else 'training leaves them out'})" if result.rows_overlong else ""), markup=False)
        for o in result.overlong[:shown] if overlong == "warn" else []:
            console.print(f"  {o.file}:{o.line}  {o.tokens} tokens", markup=False)
    if report is not None:
        console.print(f"report: {result.report_path}\nquarantine: {result.quarantine_path}", markup=False)
    if result.rows_total == 0:
        _fail(f"{path}: the data files hold no rows (empty, or blank lines only)", 2)
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


@app.command()
def estimate(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of settings."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Start from a preset."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Override one setting: KEY=VALUE (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (the total is `total_gib`)."),
) -> None:
    """Estimate peak GPU memory for these settings, and for every catalog model with them."""
    import json

    from trainer.catalog import ARCHITECTURES
    from trainer.memory import estimate_for_settings

    settings = _load(preset, config, sets)
    chosen = estimate_for_settings(settings)
    others = {key: estimate_for_settings(settings, key) for key in ARCHITECTURES}
    if as_json:
        typer.echo(json.dumps({
            "model": settings.base_model_architecture,
            "tokens_per_step": settings.batch_size * settings.max_seq_length,
            **chosen.as_dict(),
            "models": {key: e.as_dict() for key, e in others.items()},
        }, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Estimated peak GPU memory (GiB): batch {settings.batch_size} x {settings.max_seq_length} tokens, "
                        f"quantization {settings.quantization_rank}, LoRA rank {settings.lora_rank}")
    for column in ("model", "base weights", "adapter + optimizer", "activations", "overhead", "total"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for key, e in others.items():
        name = f"[bold]{key}[/]" if key == settings.base_model_architecture else key
        table.add_row(name, *(f"{v:.2f}" for v in (e.base_weights_gib, e.adapter_optimizer_gib, e.activations_gib, e.overhead_gib, e.total_gib)))
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


@app.command()
def refine(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of settings (may name a `preset:`)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Start from a preset (see `llm-trainer presets`)."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Override one setting: KEY=VALUE (repeatable)."),
) -> None:
    """Two-stage refinement: a subset at a larger LR, then all rows at a lower LR from stage 1's version.

    Stage 1 trains on refine_subset_fraction of the rows at learning_rate and is registered; stage 2 trains on all rows
    at refine_learning_rate (default: a tenth), for refine_max_steps (default: twice as long), warm-started from stage
    1's registered version. Two MLflow runs nested under one parent run."""
    settings = _load_for_training(preset, config, sets)
    from flows.refine import refine as refine_flow
    from trainer.backup import BackupError
    from trainer.contracts import DataGateError, DataUnusableError
    from trainer.settings import SettingsError

    try:
        summary = refine_flow(settings)
    except (SettingsError, DataGateError, DataUnusableError, BackupError) as exc:
        _fail(str(exc), 1)
    for stage in summary.stages:
        _print_summary(stage)
    typer.echo(f"Refinement parent MLflow run: {summary.parent_run_id}")


@app.command()
def promote(
    name: str = typer.Argument(..., help="Registered model name, e.g. llm-trainer-demo."),
    version: str = typer.Argument(..., help="The version to promote, e.g. 3."),
    alias: str = typer.Option("champion", "--alias", help="The alias to point at the version."),
    reason: str = typer.Option("", "--reason", "-r", help="Why: recorded on the version as <alias>_reason."),
) -> None:
    """Point an alias (default: champion) at a registered version by hand, with a reason.

    Recorded on the version: when, by whom, why, and the version the alias pointed to before. Registry aliases only;
    MLflow's deprecated stages are never used."""
    if not version.isdigit():
        _fail(f"version: expected a version number such as 3, got {version!r}")
    if not alias or not alias.replace("-", "").replace("_", "").isalnum():
        _fail(f"--alias {alias!r}: use letters, digits, '-' or '_'")
    from trainer.state import apply_environment_defaults

    apply_environment_defaults()
    from trainer.promotion import promote_manually
    from trainer.settings import SettingsError

    try:
        previous = promote_manually(name, version, alias, reason)
    except SettingsError as exc:
        _fail(str(exc), 1)
    typer.echo(f"{name}: {alias} -> version {version} (was {previous or 'unset'})" + (f"; reason: {reason}" if reason else ""))


@app.command()
def compare(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Compare the newest versions of this registered model."),
    runs: Optional[str] = typer.Option(None, "--runs", help="Compare these MLflow runs: comma-separated run ids."),
    limit: int = typer.Option(6, "--limit", min=1, help="How many versions / latest runs to show."),
    experiment: str = typer.Option("llm-trainer", "--experiment", help="Experiment whose latest runs are shown without --model/--runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of a table."),
) -> None:
    """Compare registered versions or runs side by side: settings that differ, metrics, aliases.

    Also the base model's and the champion's eval loss on the same rows, the data fingerprint, the parent version and
    the promotion decision."""
    from trainer.state import apply_environment_defaults

    apply_environment_defaults()
    from trainer.report import compare_items, comparison_rows
    from trainer.settings import SettingsError

    run_ids = [r.strip() for r in runs.split(",") if r.strip()] if runs else None
    try:
        items = compare_items(model=model, run_ids=run_ids, limit=limit, experiment_name=experiment)
    except SettingsError as exc:
        _fail(str(exc), 1)
    if not items:
        _fail(f"nothing to compare: {'no versions of ' + model if model else 'no runs in experiment ' + experiment}", 1)
    rows = comparison_rows(items)
    if as_json:
        import json

        typer.echo(json.dumps({"columns": [i["label"] for i in items], "rows": {k: v for k, v in rows}}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{model} versions" if model else "runs")
    table.add_column("")
    for item in items:
        table.add_column(item["label"], overflow="fold")
    for key, values in rows:
        table.add_row(key, *values)
    Console().print(table)


@app.command()
def restore(
    location: str = typer.Argument(..., help="The backup: a folder or fsspec URL holding MANIFEST.json."),
    register: bool = typer.Option(False, "--register", help="Also log and register the restored model in MLflow."),
    to: Optional[Path] = typer.Option(None, "--to", help="Where to rebuild it (default: <state>/restored/<backup name>)."),
    name: Optional[str] = typer.Option(None, "--name", help="Registered model name for --register (default: the one in the manifest)."),
) -> None:
    """Verify a backup and rebuild a loadable model from it, without MLflow; --register re-registers it.

    Every file is checked against MANIFEST.json (sha256 and size); a missing or changed file stops the restore. The
    rebuilt folder is an MLflow pyfunc model: mlflow.pyfunc.load_model(FOLDER) answers prompts."""
    from trainer.state import apply_environment_defaults, state_dir

    apply_environment_defaults()
    from trainer.backup import BackupError
    from trainer.restore import restore as restore_backup
    from trainer.settings import SettingsError

    destination = to or state_dir() / "restored" / location.rstrip("/").rsplit("/", 1)[-1]
    try:
        restored = restore_backup(location, destination, register=register, name=name)
    except (BackupError, SettingsError) as exc:
        _fail(str(exc), 1)
    typer.echo(f"verified {len(restored.manifest.files)} files ({restored.manifest.total_bytes / 2**20:.1f} MiB) against MANIFEST.json")
    typer.echo(f"model folder: {restored.model_dir}  (mlflow.pyfunc.load_model(\"{restored.model_dir}\"))")
    typer.echo(f"backup files: {restored.files_dir}  (checkpoint/ continues training via trained_artifact)")
    if restored.registered_version:
        typer.echo(f"registered: {restored.registered_name} version {restored.registered_version}"
                   f" ({', '.join(restored.aliases) or 'no aliases'})")


def _submitted_to_running_on(settings) -> bool:
    """`run` with running_on=POOL: with PREFECT_API_URL set, submit to the deployment on that work
    pool and return True; without it, say so in one line and return False (the run stays here)."""
    from flows.submit import SubmitError, api_url, submit_settings

    if not api_url():
        typer.echo(f"running_on={settings.running_on}: PREFECT_API_URL is not set, so this run trains here, in this process", err=True)
        return False
    try:
        submit_settings(settings, echo=lambda line: typer.echo(line, err=True))
    except SubmitError as exc:
        _fail(str(exc), 1)
    return True


@app.command()
def submit(
    deployment: str = typer.Argument("llm-trainer/adhoc", help="The deployment: NAME or llm-trainer/NAME (`prefect deployment ls`)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of settings (may name a `preset:`), over the deployment's."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Change one setting: KEY=VALUE (repeatable); the others stay the deployment's."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Wait for the run, showing its states and logs; exit 1 unless it completes."),
    timeout: Optional[int] = typer.Option(None, "--timeout", min=1, help="With --watch: give up waiting after this many seconds."),
) -> None:
    """Start a run of a Prefect deployment (needs PREFECT_API_URL) with its settings, changed by --config / --set.

    `prefect deployment run --param settings=...` replaces the deployment's whole settings dict; this changes only what
    you pass, checks the result as `run` does, and relative paths are relative to the worker's clone. See docs/operations.md."""
    from trainer.state import apply_environment_defaults

    apply_environment_defaults()
    from flows.submit import SubmitError, api_url, submit_to_deployment
    from trainer.settings import SettingsError

    if not api_url():
        _fail("PREFECT_API_URL is not set: point it at the Prefect server that holds the deployment (docs/operations.md)")
    try:
        submitted = submit_to_deployment(deployment, config, sets, watch=watch, timeout=timeout,
                                         echo=lambda line: typer.echo(line, err=True))
    except SettingsError as exc:
        _fail(str(exc))
    except SubmitError as exc:
        _fail(str(exc), 1)
    typer.echo(submitted.flow_run_id)
    if watch and submitted.final_state != "Completed":
        _fail(f"flow run {submitted.flow_run_name} ended {submitted.final_state}" + (f": {submitted.message}" if submitted.message else ""), 1)



@app.command()
def join(
    spec: Path = typer.Argument(..., help="The spec.json node 0 printed (<run output>/distributed/spec.json, on the shared filesystem)."),
    node_rank: int = typer.Option(..., "--node-rank", min=1, help="This node's rank: 1 .. num_nodes-1, each node its own."),
    wait: int = typer.Option(0, "--wait", min=0, help="Wait up to this many seconds for the spec to appear (start nodes in any order)."),
) -> None:
    """Join a multi-node training as node NODE_RANK: runs torchrun for this node's processes (num_nodes > 1).

    Node 0 is the node the flow's train task runs on; it prints this command, with the spec path, when it starts."""
    import logging
    import time

    from trainer.state import apply_environment_defaults

    deadline = time.monotonic() + wait
    while not spec.is_file() and time.monotonic() < deadline:
        time.sleep(1)
    if not spec.is_file():
        _fail(f"{spec}: no such spec; run this with the path node 0 printed (it must be on a filesystem both nodes see)")
    apply_environment_defaults()
    logging.getLogger("llm_trainer").setLevel(logging.INFO)
    from trainer.distributed import DistributedTrainingError, run_torchrun, spec_settings
    from trainer.settings import SettingsError

    try:
        settings = spec_settings(spec)
    except (ValueError, KeyError) as exc:
        _fail(f"{spec}: not a training spec ({exc})")
    if node_rank >= settings.num_nodes:
        _fail(f"--node-rank: {node_rank} is out of range; this training has num_nodes={settings.num_nodes} (ranks 1..{settings.num_nodes - 1})")
    try:
        run_torchrun(settings, spec, node_rank, log_line=lambda line: typer.echo(line, err=True))
    except (DistributedTrainingError, SettingsError, ValueError, MemoryError) as exc:
        _fail(str(exc), 1)
    typer.echo(f"node {node_rank}: training processes finished")

def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
