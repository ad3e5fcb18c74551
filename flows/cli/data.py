"""`llm-trainer validate`: check a data folder against the contracts, as the pipeline's validate
stage does, and say row by row what is wrong and where."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import app, fail, print_table

# The pipeline's setting names, as this command's flags (so setting errors name the flag).
FLAGS = {
    "dataset_format": "--format",
    "overlong_rows": "--overlong",
    "column_mapping": "--map",
    "base_model_architecture": "--model",
    "max_seq_length": "--max-seq-length",
    "text_windows": "--text-windows",
    "text_window_overlap": "--text-window-overlap",
}


@app.command()
def validate(
    path: Annotated[
        Path,
        typer.Argument(
            help="A data file or a folder of them, subfolders included: *.jsonl, *.json (an array of records), *.csv, "
            "*.parquet, *.jsonl.gz / *.json.gz, or a `datasets` save_to_disk folder."
        ),
    ],
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write the JSON report here; every quarantined row, with its raw bytes, goes beside it in "
            "NAME.quarantine.jsonl.",
        ),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Force one format for every file: chat, sharegpt, instruction, prompt_completion or text "
            "(default: detected per file).",
        ),
    ] = None,
    maps: Annotated[
        list[str],
        typer.Option(
            "--map",
            help="Rename a column / top-level field before detection: SOURCE=TARGET, e.g. question=prompt "
            "(repeatable).",
        ),
    ] = [],  # noqa: B006
    max_seq_length: Annotated[
        int | None,
        typer.Option(
            "--max-seq-length",
            min=1,
            help="Also tokenize each valid row as training will and report rows longer than this (default: no token "
            "check).",
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Whose tokenizer counts for --max-seq-length: an architecture (see `llm-trainer models`) or a local "
            "model folder.",
        ),
    ] = "tiny-llama",
    overlong: Annotated[
        str,
        typer.Option(
            "--overlong", help="Rows over --max-seq-length: warn (report only) or quarantine (reason too_many_tokens)."
        ),
    ] = "warn",
    text_windows: Annotated[
        bool,
        typer.Option(
            "--text-windows",
            help="Split plain-text rows over --max-seq-length into windows instead of reporting them (text_windows).",
        ),
    ] = False,
    text_window_overlap: Annotated[
        int,
        typer.Option("--text-window-overlap", min=0, help="Tokens each text window repeats from the one before."),
    ] = 0,
) -> None:
    """Check data against the contracts. Exit 0: every row valid; 1: some rows quarantined; 2: unusable input
    (missing path, no data files or rows, unreadable file, formats that can't be mixed, preference data)."""
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from trainer.data.contracts.report import write_report
    from trainer.data.contracts.validate import validate_dataset
    from trainer.errors import ContractError, DataUnusableError

    if text_windows and max_seq_length is None:
        fail("--text-windows: needs --max-seq-length (windows are cut in tokens of --model's tokenizer)")
    settings = _settings(format, overlong, maps, max_seq_length, model, (text_windows, text_window_overlap))
    tokenizer = _counting_tokenizer(settings, model) if max_seq_length is not None else None
    quarantine = report.with_suffix(".quarantine.jsonl") if report is not None else None
    for target in (report, quarantine) if report is not None else ():
        if target.is_symlink() or (target.exists() and not target.is_file()):
            fail(
                f"--report {report}: {target} is a link or not a regular file (a device, a FIFO); name a plain file", 2
            )
    if (
        report is not None
        and path.is_dir()
        and any(p.resolve().is_relative_to(path.resolve()) for p in (report, quarantine))
    ):
        fail(
            f"--report {report}: inside the data folder, where the next validation would read it as data; write it "
            "elsewhere"
        )
    try:
        result, _ = validate_dataset(
            path,
            None,
            settings.dataset_format,
            column_mapping=settings.column_mapping,
            tokenizer=tokenizer,
            max_seq_length=max_seq_length,
            overlong_rows=settings.overlong_rows,
            text_windows=settings.text_windows,
            text_window_overlap=settings.text_window_overlap,
        )
    except (DataUnusableError, ContractError) as exc:
        fail(str(exc), 2)
    if report is not None:
        try:
            write_report(result, report_path=report, quarantine_path=quarantine)
        except OSError as exc:
            fail(f"--report {report}: can't write it ({exc.strerror or exc})", 2)
    _print_result(path, result, report is not None, tokenizer is not None)
    if result.rows_total == 0:
        fail(f"{path}: the data files hold no rows (empty, or blank lines only)", 2)
    raise typer.Exit(0 if result.rows_quarantined == 0 else 1)


def _flagged(message: str) -> str:
    """A pipeline setting message, named by this command's flag."""
    setting, _, rest = message.partition(":")
    name, _, key = setting.partition(".")
    return f"{FLAGS[name]}{' ' + key if key else ''}:{rest}" if name in FLAGS else message


def _settings(
    format: str | None,
    overlong: str,
    maps: list[str],
    max_seq_length: int | None,
    model: str,
    windows: tuple[bool, int],
):
    from trainer.config.loading import build_settings
    from trainer.errors import SettingsError

    values: dict = {"dataset_format": format, "overlong_rows": overlong, "column_mapping": {}}
    values["text_windows"], values["text_window_overlap"] = windows
    for pair in maps:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            fail(f"--map {pair!r}: expected SOURCE=TARGET, e.g. --map question=prompt")
        values["column_mapping"][source.strip()] = target.strip()
    if max_seq_length is not None:
        values["base_model_assets_path" if Path(model).is_dir() else "base_model_architecture"] = model
        if windows[0]:  # the overlap is checked against it
            values["max_seq_length"] = max_seq_length
    try:
        return build_settings(values)
    except SettingsError as exc:
        fail(_flagged(str(exc)))


def _counting_tokenizer(settings, model: str):
    from trainer.errors import SettingsError
    from trainer.model.assets import load_counting_tokenizer, resolve_tokenizer_dir

    try:
        return load_counting_tokenizer(resolve_tokenizer_dir(settings), settings.trust_remote_code)
    except SettingsError as exc:
        fail(_flagged(str(exc)))
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        fail(f"--model {model}: can't load its tokenizer ({type(exc).__name__}: {first})")


def _print_result(path: Path, result, wrote_report: bool, counted_tokens: bool) -> None:
    from rich.console import Console

    from trainer.data.contracts.report import report_view

    view = report_view(result)
    console = Console(highlight=False, soft_wrap=True)  # soft wrap: long lines stay whole, for grep and logs
    console.print(
        f"{path}: {result.rows_valid}/{result.rows_total} rows valid, {result.rows_quarantined} quarantined "
        f"(format {result.format}, contract {result.contract_version})",
        markup=False,
    )
    print_table(view.file_columns, view.file_rows, right=("rows", "valid", "quarantined"))
    for where, reason, detail in view.quarantined:
        console.print(f"  {where}  {reason}: {detail}", markup=False)
    if view.more_quarantined:
        where = f" in {result.quarantine_path}" if wrote_report else " (--report writes them all)"
        console.print(f"  ... {view.more_quarantined} more{where}", markup=False)
    if view.ignored:
        more = ", ..." if len(view.ignored) > 10 else ""
        console.print(f"not read: {', '.join(view.ignored[:10])}{more}", markup=False)
    for warning in view.warnings:
        console.print(f"warning: {warning}", markup=False)
    for note in view.notes:
        console.print(f"note: {note}", markup=False)
    if counted_tokens:
        what = "quarantined" if result.overlong_rows == "quarantine" else "training leaves them out"
        console.print(
            f"tokens ({result.tokenizer}): longest row {result.max_tokens}; {result.rows_overlong} rows over "
            f"{result.max_seq_length}" + (f" ({what})" if result.rows_overlong else ""),
            markup=False,
        )
        for where, tokens in view.overlong if result.overlong_rows == "warn" else []:
            console.print(f"  {where}  {tokens} tokens", markup=False)
    if wrote_report:
        console.print(f"report: {result.report_path}\nquarantine: {result.quarantine_path}", markup=False)
