"""`llm-trainer tokens`: what training will see of a few rows, as the model's chat template renders
them, with the tokens the loss is computed on highlighted. The first thing to run on a new model or
dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import flows.cli.data_options as opts
from flows.cli.app import JsonOption, app, fail

TRAINED_STYLE = "bold black on green"
PROMPT_STYLE = "dim"
# Without colours (output piped to a file), trained text is marked with these instead.
OPEN, CLOSE = "⟦", "⟧"


@app.command()
def tokens(
    path: Annotated[Path, typer.Argument(help="A data file or a folder, read as `validate` reads it.")],
    rows: Annotated[int, typer.Option("--rows", min=1, help="How many valid rows to show (the first ones).")] = 3,
    as_json: JsonOption = False,
    model: opts.ModelOption = None,
    max_seq_length: opts.MaxSeqOption = None,
    format: opts.FormatOption = None,
    maps: opts.MapOption = [],  # noqa: B006
    overlong: opts.OverlongOption = None,
    text_windows: opts.TextWindowsOption = None,
    text_window_overlap: opts.OverlapOption = None,
    duplicates: opts.DuplicatesOption = None,
    report: opts.ReportOption = None,
    config: opts.ConfigOption = None,
    preset: opts.PresetOption = None,
    sets: opts.SetOption = [],  # noqa: B006
) -> None:
    """Show what will be trained: the first valid rows rendered by the model's chat template, trained tokens
    highlighted. Takes every option `validate` takes and reads the data as it does. --json: one object per row,
    {"file", "line", "segments": [{"text", "trained"}]}. Exit 0: every row shown renders; 1: the template can't
    render some rows (or none is valid); 2: unusable input."""
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from trainer.errors import TemplateRenderError
    from trainer.model.templates import template_facts, template_warnings
    from trainer.model.tokens import tokenize_example, trained_segments

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
    )  # a bad --model is one line at once, before the data is read
    opts.check_report_target(report, path)
    # Counting tokens needs the tokenizer to validate; otherwise it is loaded (the tiny model built, a hub
    # model's tokenizer files fetched) only once the data is known to be usable.
    tokenizer = opts.load_tokenizer(choice) if choice.count_tokens else None
    report_, examples = opts.read_rows(path, choice, tokenizer, report)
    tokenizer = tokenizer or opts.load_tokenizer(choice)
    for warning in template_warnings(tokenizer):
        typer.echo(f"warning: {warning}", err=True)
    if report_.rows_total == 0:
        fail(f"{path}: the data files hold no rows (empty, or blank lines only)", 2)
    if not examples:
        fail(
            f"{path}: no valid rows to show ({report_.rows_quarantined} quarantined; `llm-trainer validate` says why)",
            1,
        )
    limit = choice.settings.max_seq_length if choice.count_tokens else None
    show = _Printer(as_json, choice.model, template_facts(tokenizer), report_, len(examples[:rows]))
    failed = 0
    for example in examples[:rows]:
        try:
            tokenized = tokenize_example(tokenizer, example, choice.settings.train_on_prompt)
        except TemplateRenderError as exc:
            failed += 1
            show.error(example, str(exc))
            continue
        over = limit is not None and len(tokenized.input_ids) > limit
        show.row(example, tokenized, trained_segments(tokenizer, tokenized), over, limit)
    raise typer.Exit(1 if failed else 0)


class _Printer:
    """Rows as highlighted text (with a legend), or as JSON objects, one per line."""

    def __init__(self, as_json: bool, model: str, facts, report, count: int) -> None:
        from rich.console import Console

        self.as_json = as_json
        self.console = Console(highlight=False, soft_wrap=True)
        self.marks = self.console.color_system is None  # no colours: mark trained text with ⟦ ⟧
        if as_json:
            return
        # Quoted when it holds a newline or a control character: the facts stay on this one line.
        eot = ", ".join(e if e.isprintable() else json.dumps(e) for e in facts.end_of_turn) or (
            "none (eos is trained after the last answer)"
        )
        system = "yes" if facts.supports_system_role else "no (a system prompt is folded into the first user turn)"
        self.console.print(
            f"{report.data_path}: showing {count} of {report.rows_valid} valid rows ({report.rows_quarantined} "
            "quarantined), "
            f"tokenizer of {model}; chat template facts from {facts.source}: end of turn {eot}; system role {system}; "
            f"tool calls {'yes' if facts.supports_tools else 'no'}",
            markup=False,
        )
        legend = self._text([("trained (the loss is computed on these tokens)", True), ("   ", False)])
        legend.append("prompt and template text (not trained)", style=PROMPT_STYLE)
        self.console.print(legend)

    def _text(self, segments):
        from rich.text import Text

        text = Text()
        for piece, trained in segments:
            if trained:
                text.append(f"{OPEN}{piece}{CLOSE}" if self.marks else piece, style=TRAINED_STYLE)
            else:
                text.append(piece, style=PROMPT_STYLE)
        return text

    def row(self, example, tokenized, segments, over: bool, max_seq_length: int | None) -> None:
        from trainer.model.tokens import IGNORE_INDEX

        trained = sum(label != IGNORE_INDEX for label in tokenized.labels)
        if self.as_json:
            record = {
                "file": example.file,
                "line": example.line,
                "tokens": len(tokenized.input_ids),
                "trained_tokens": trained,
                "folded_system": tokenized.folded_system,
                "segments": [{"text": piece, "trained": flag} for piece, flag in segments],
            }
            if max_seq_length is not None:
                record["over_max_seq_length"] = over
            typer.echo(json.dumps(record, ensure_ascii=False))
            return
        notes = [f"{len(tokenized.input_ids)} tokens, {trained} trained"]
        if tokenized.folded_system:
            notes.append("system prompt folded into the first user turn")
        if over:
            notes.append(f"over --max-seq-length {max_seq_length}: training leaves this row out")
        self.console.print(f"\n── {example.file}:{example.line} ({'; '.join(notes)})", markup=False)
        self.console.print(self._text(segments))

    def error(self, example, message: str) -> None:
        if self.as_json:
            typer.echo(json.dumps({"file": example.file, "line": example.line, "error": message}, ensure_ascii=False))
        else:
            self.console.print(f"\n── {example.file}:{example.line}  template_error: {message}", markup=False)
