"""`llm-trainer validate`: check a data folder against the contracts, as the pipeline's validate
stage does, and say row by row what is wrong and where."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import flows.cli.data_options as opts
from flows.cli.app import app, fail, print_table


@app.command()
def validate(
    path: Annotated[
        Path,
        typer.Argument(
            help="A data file or a folder of them, subfolders included: *.jsonl, *.json (an array of records), *.csv, "
            "*.parquet, *.jsonl.gz / *.json.gz, or a `datasets` save_to_disk folder."
        ),
    ],
    report: opts.ReportOption = None,
    format: opts.FormatOption = None,
    maps: opts.MapOption = [],  # noqa: B006
    max_seq_length: opts.MaxSeqOption = None,
    model: opts.ModelOption = None,
    overlong: opts.OverlongOption = None,
    text_windows: opts.TextWindowsOption = None,
    text_window_overlap: opts.OverlapOption = None,
    duplicates: opts.DuplicatesOption = None,
    config: opts.ConfigOption = None,
    preset: opts.PresetOption = None,
    sets: opts.SetOption = [],  # noqa: B006
) -> None:
    """Check data against the contracts, as `run` reads it with the same settings (--config/--preset/--set give a
    run's data settings; the flags override them). Exit 0: every row valid; 1: some rows quarantined; 2: unusable
    input (missing path, no data files or rows, unreadable file, formats that can't be mixed, preference data)."""
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    choice = opts.choose(
        config,
        preset,
        sets,
        format=format,
        maps=maps,
        max_seq_length=max_seq_length,
        model=model,
        overlong=overlong,
        text_windows=text_windows,
        overlap=text_window_overlap,
        duplicates=duplicates,
    )
    tokenizer = opts.load_tokenizer(choice) if choice.count_tokens else None
    result, _ = opts.read_rows(path, choice, tokenizer, report)
    _print_result(path, result, report is not None, tokenizer is not None)
    if result.rows_total == 0:
        fail(f"{path}: the data files hold no rows (empty, or blank lines only)", 2)
    raise typer.Exit(0 if result.rows_quarantined == 0 else 1)


def _print_result(path: Path, result, wrote_report: bool, counted_tokens: bool) -> None:
    from rich.console import Console

    from trainer.data.contracts.report import report_view

    view = report_view(result)
    console = Console(highlight=False, soft_wrap=True)  # soft wrap: long lines stay whole, for grep and logs
    console.print(
        f"{path}: {result.rows_valid}/{result.rows_total} rows valid, {result.rows_quarantined} quarantined"
        + (f", {result.rows_duplicate} exact duplicates left out" if result.rows_duplicate else "")
        + f" (format {result.format}, contract {result.contract_version})",
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
