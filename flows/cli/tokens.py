"""`llm-trainer tokens`: what training will see of a few rows, as the model's chat template renders
them, with the tokens the loss is computed on highlighted. The first thing to run on a new model or
dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from flows.cli.app import JsonOption, app, fail

TRAINED_STYLE = "bold black on green"
PROMPT_STYLE = "dim"
# Without colours (output piped to a file), trained text is marked with these instead.
OPEN, CLOSE = "⟦", "⟧"


@app.command()
def tokens(
    path: Annotated[Path, typer.Argument(help="A data file or a folder, read as `validate` reads it.")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Whose chat template and tokenizer: an architecture (see `llm-trainer models`) or a local model "
            "folder.",
        ),
    ] = "tiny-llama",
    rows: Annotated[int, typer.Option("--rows", min=1, help="How many valid rows to show (the first ones).")] = 3,
    max_seq_length: Annotated[
        int | None,
        typer.Option(
            "--max-seq-length", min=1, help="Mark rows longer than this many tokens (training leaves them out)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show what will be trained: the first valid rows rendered by the model's chat template, trained tokens
    highlighted. --json: one object per row, {"file", "line", "segments": [{"text", "trained"}]}. Exit 0: every
    row shown renders; 1: the template can't render some rows (or none is valid); 2: unusable input."""
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from trainer.data.contracts.validate import validate_dataset
    from trainer.errors import ContractError, DataUnusableError, TemplateRenderError
    from trainer.model.templates import template_facts
    from trainer.model.tokens import tokenize_example, trained_segments

    settings = _model_settings(model)  # a bad --model is one line at once, before the data is read
    try:
        report, examples = validate_dataset(path)
    except (DataUnusableError, ContractError) as exc:
        fail(str(exc), 2)
    if report.rows_total == 0:
        fail(f"{path}: the data files hold no rows (empty, or blank lines only)", 2)
    if not examples:
        fail(
            f"{path}: no valid rows to show ({report.rows_quarantined} quarantined; `llm-trainer validate` says why)", 1
        )
    tokenizer = _tokenizer(model, settings)
    show = _Printer(as_json, model, template_facts(tokenizer), report, len(examples[:rows]))
    failed = 0
    for example in examples[:rows]:
        try:
            tokenized = tokenize_example(tokenizer, example)
        except TemplateRenderError as exc:
            failed += 1
            show.error(example, str(exc))
            continue
        over = max_seq_length is not None and len(tokenized.input_ids) > max_seq_length
        show.row(example, tokenized, trained_segments(tokenizer, tokenized), over, max_seq_length)
    raise typer.Exit(1 if failed else 0)


def _model_settings(model: str):
    """Settings naming the model (an architecture key or a local folder), or one `error:` line naming --model."""
    from trainer.config.loading import build_settings
    from trainer.errors import SettingsError

    key = "base_model_assets_path" if Path(model).is_dir() else "base_model_architecture"
    try:
        return build_settings({key: model})
    except SettingsError as exc:
        _model_error(str(exc))


def _model_error(message: str) -> NoReturn:
    setting, _, rest = message.partition(":")
    fail(f"--model:{rest}" if setting in ("base_model_architecture", "base_model_assets_path") else message)


def _tokenizer(model: str, settings):
    """The model's tokenizer as training sets it up (the tiny model is built, a hub model's tokenizer files
    fetched, only now that the data is known to be usable), or one `error:` line naming --model."""
    from trainer.errors import SettingsError
    from trainer.model.assets import load_counting_tokenizer, resolve_tokenizer_dir

    try:
        return load_counting_tokenizer(resolve_tokenizer_dir(settings), settings.trust_remote_code)
    except SettingsError as exc:
        _model_error(str(exc))
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        fail(f"--model {model}: can't load its tokenizer ({type(exc).__name__}: {first})")


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
