"""The model registry by hand: `promote` an alias, `compare` versions or runs, `restore` or `verify` a backup."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import app, fail, print_table, quiet_environment


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. llm-trainer-demo.")],
    version: Annotated[str, typer.Argument(help="The version to promote, e.g. 3.")],
    alias: Annotated[str, typer.Option("--alias", help="The alias to point at the version.")] = "champion",
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why: recorded on the version as <alias>_reason.")] = "",
) -> None:
    """Point an alias (default: champion) at a registered version by hand, with a reason.

    Recorded on the version: when, by whom, why, and the version the alias pointed to before. Registry aliases only;
    MLflow's deprecated stages are never used."""
    if not version.isdigit():
        fail(f"version: expected a version number such as 3, got {version!r}")
    if not alias or not alias.replace("-", "").replace("_", "").isalnum():
        fail(f"--alias {alias!r}: use letters, digits, '-' or '_'")
    quiet_environment()
    from trainer.errors import SettingsError
    from trainer.registry.promotion import promote_manually

    try:
        previous = promote_manually(name, version, alias, reason)
    except SettingsError as exc:
        fail(str(exc), 1)
    typer.echo(
        f"{name}: {alias} -> version {version} (was {previous or 'unset'})" + (f"; reason: {reason}" if reason else "")
    )


@app.command()
def compare(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Compare the newest versions of this registered model.")
    ] = None,
    runs: Annotated[
        str | None, typer.Option("--runs", help="Compare these MLflow runs: comma-separated run ids.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many versions / latest runs to show.")] = 6,
    experiment: Annotated[
        str, typer.Option("--experiment", help="Experiment whose latest runs are shown without --model/--runs.")
    ] = "llm-trainer",
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON instead of a table.")] = False,
) -> None:
    """Compare registered versions or runs side by side: settings that differ, metrics, aliases.

    Also the base model's and the champion's eval loss on the same rows, the data fingerprint, the parent version and
    the promotion decision."""
    quiet_environment()
    from trainer.errors import SettingsError
    from trainer.reports.compare import compare_items, comparison_rows

    run_ids = [r.strip() for r in runs.split(",") if r.strip()] if runs else None
    try:
        items = compare_items(model=model, run_ids=run_ids, limit=limit, experiment_name=experiment)
    except SettingsError as exc:
        fail(str(exc), 1)
    if not items:
        fail(f"nothing to compare: {'no versions of ' + model if model else 'no runs in experiment ' + experiment}", 1)
    rows = comparison_rows(items)
    if as_json:
        import json

        typer.echo(json.dumps({"columns": [i["label"] for i in items], "rows": dict(rows)}, indent=2))
        return
    print_table(("", *(i["label"] for i in items)), ((key, *values) for key, values in rows),
                title=f"{model} versions" if model else "runs")  # fmt: skip


@app.command()
def restore(
    location: Annotated[str, typer.Argument(help="The backup: a folder or fsspec URL holding MANIFEST.json.")],
    register: Annotated[
        bool, typer.Option("--register", help="Also log and register the restored model in MLflow.")
    ] = False,
    to: Annotated[
        str | None, typer.Option("--to", help="Where to rebuild it (default: <state>/restored/<backup name>).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Registered model name for --register (default: the one in the manifest)."),
    ] = None,
    base_model: Annotated[
        Path | None,
        typer.Option(
            "--base-model",
            help="A local base model folder to rebuild on when the backup carries no base weights "
            "(a path recorded inside a backup is never followed).",
        ),
    ] = None,
) -> None:
    """Verify a backup and rebuild a loadable model from it, without MLflow; --register re-registers it.

    Every file is checked against MANIFEST.json (sha256 and size); a missing or changed file stops the restore. The
    rebuilt folder is an MLflow pyfunc model: mlflow.pyfunc.load_model(FOLDER) answers prompts."""
    quiet_environment()
    from trainer.config.state import state_dir
    from trainer.errors import PipelineError
    from trainer.storage.restore import restore as restore_backup

    tail = location.rstrip("/").rsplit("/", 1)[-1]
    if tail in ("", ".", "..") or ":" in tail:  # never a folder above <state>/restored
        tail = "backup"
    if to is not None and not to.strip():
        fail("--to: empty; name the folder to restore into (or leave --to out for <state>/restored/<backup>)")
    if to is not None and "://" in to:  # it would become a folder named `s3:` in the current one
        fail(f"--to {to}: a restore is built in a local folder; name one (a backup may be read from a URL)")
    destination = Path(to) if to else state_dir() / "restored" / tail
    try:
        restored = restore_backup(location, destination, register=register, name=name, base_model=base_model)
    except PipelineError as exc:
        fail(str(exc), 1)
    manifest = restored.manifest
    typer.echo(f"verified {len(manifest.files)} files ({manifest.total_bytes / 2**20:.1f} MiB) against MANIFEST.json")
    typer.echo(f'model folder: {restored.model_dir}  (mlflow.pyfunc.load_model("{restored.model_dir}"))')
    typer.echo(f"backup files: {restored.files_dir}  (checkpoint/ continues training via trained_artifact)")
    if restored.registered_version:
        aliases = ", ".join(restored.aliases) or "no aliases"
        typer.echo(f"registered: {restored.registered_name} version {restored.registered_version} ({aliases})")


@app.command()
def verify(
    location: Annotated[str, typer.Argument(help="The backup: a folder or fsspec URL holding MANIFEST.json.")],
) -> None:
    """Check a backup against its MANIFEST.json (every file's sha256 and size) without copying anything.

    Exit 1 with one line naming any missing or changed file, or any manifest entry outside the backup (absolute,
    '..', a symbolic link): a backup from elsewhere is untrusted data."""
    quiet_environment()
    from trainer.errors import PipelineError
    from trainer.storage.backup import verify as verify_backup

    try:
        manifest = verify_backup(location)
    except PipelineError as exc:
        fail(str(exc), 1)
    typer.echo(f"verified {len(manifest.files)} files ({manifest.total_bytes / 2**20:.1f} MiB) against MANIFEST.json")
