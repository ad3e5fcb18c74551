"""The data and settings options `validate` and `tokens` share, and the one way both read rows.

Both commands read a data path exactly as `run` reads `dataset_path` with the same settings: a
`--config`, `--preset` or `--set` gives them all of a run's data settings (format, column mapping,
max_seq_length, windows, the base model), and the flags below override those one by one. So what
`tokens` previews is what `validate` checks and what training trains.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.app import ConfigOption, PresetOption, SetOption, fail  # noqa: F401  (re-exported for the commands)

# The pipeline's setting names, as these flags (so setting errors name the flag).
FLAGS = {
    "dataset_format": "--format",
    "overlong_rows": "--overlong",
    "column_mapping": "--map",
    "base_model_architecture": "--model",
    "max_seq_length": "--max-seq-length",
    "text_windows": "--text-windows",
    "text_window_overlap": "--text-window-overlap",
    "duplicate_rows": "--duplicates",
}

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="Force one format for every file: chat, sharegpt, instruction, prompt_completion or text "
        "(default: detected per file).",
    ),
]
MapOption = Annotated[
    list[str],
    typer.Option(
        "--map",
        help="Rename a column / top-level field before detection: SOURCE=TARGET, e.g. question=prompt (repeatable).",
    ),
]
MaxSeqOption = Annotated[
    int | None,
    typer.Option(
        "--max-seq-length",
        min=1,
        help="Tokenize each valid row as training will and report rows longer than this many tokens (default: "
        "no token check, or the settings' max_seq_length with --config/--preset/--set).",
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Whose tokenizer and chat template: an architecture (see `llm-trainer models`) or a local model or "
        "tokenizer folder (default: the settings' base model, else tiny-llama).",
    ),
]
OverlongOption = Annotated[
    str | None,
    typer.Option(
        "--overlong", help="Rows over --max-seq-length: warn (report only) or quarantine (reason too_many_tokens)."
    ),
]
TextWindowsOption = Annotated[
    bool | None,
    typer.Option(
        "--text-windows/--no-text-windows",
        help="Split plain-text rows over --max-seq-length into windows instead of reporting them (text_windows).",
        show_default=False,
    ),
]
OverlapOption = Annotated[
    int | None,
    typer.Option("--text-window-overlap", min=0, help="Tokens each text window repeats from the one before."),
]
DuplicatesOption = Annotated[
    str | None,
    typer.Option(
        "--duplicates",
        help="Exact duplicate rows: drop (train the first copy once, report the others; the default), quarantine "
        "(reason duplicate_row) or keep (train every copy).",
    ),
]
ReportOption = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="Write the JSON report here; every quarantined row, with its raw bytes, goes beside it in "
        "NAME.quarantine.jsonl.",
    ),
]


@dataclass(frozen=True)
class DataChoice:
    """What the flags and settings chose: the settings, where the tokenizer comes from, and whether
    tokens are counted (max_seq_length given, or a run's settings named)."""

    settings: Any
    model: str  # as the user named it (for messages)
    tokenizer_dir: Path | None  # a local folder named by --model (a tokenizer alone is enough), else None
    count_tokens: bool


def choose(
    config: Path | None,
    preset: str | None,
    sets: list[str],
    *,
    format: str | None,
    maps: list[str],
    max_seq_length: int | None,
    model: str | None,
    overlong: str | None,
    text_windows: bool | None,
    overlap: int | None,
    duplicates: str | None = None,
) -> DataChoice:
    """Settings from preset -> YAML -> --set (only when one is given), then these flags; one `error:`
    line naming the flag or the setting when a value is bad."""
    from trainer.config.loading import build_settings, settings_values
    from trainer.errors import SettingsError

    named = config is not None or preset is not None or bool(sets)
    try:
        values: dict = settings_values(preset, config, sets) if named else {}
    except SettingsError as exc:
        fail(str(exc))
    flags: dict = {}
    if format is not None:
        flags["dataset_format"] = format
    if overlong is not None:
        flags["overlong_rows"] = overlong
    if maps:
        mapping = {}
        for pair in maps:
            source, sep, target = pair.partition("=")
            if not sep or not source.strip() or not target.strip():
                fail(f"--map {pair!r}: expected SOURCE=TARGET, e.g. --map question=prompt")
            mapping[source.strip()] = target.strip()
        flags["column_mapping"] = mapping
    if max_seq_length is not None:
        flags["max_seq_length"] = max_seq_length
    if text_windows is not None:
        flags["text_windows"] = text_windows
    if overlap is not None:
        flags["text_window_overlap"] = overlap
    if duplicates is not None:
        flags["duplicate_rows"] = duplicates
    folder = Path(model) if model is not None and Path(model).is_dir() else None
    if model is not None and folder is None:
        flags["base_model_architecture"] = model
        values.pop("base_model_assets_path", None)
    if folder is not None:
        # Only the tokenizer is read: a folder holding it alone is enough (no config.json, no weights).
        values.pop("base_model_assets_path", None)
    try:
        settings = build_settings({**values, **flags})
    except SettingsError as exc:
        fail(_flagged(str(exc), set(flags)))
    if settings.text_windows and not (named or max_seq_length is not None):
        fail("--text-windows: needs --max-seq-length (windows are cut in tokens of --model's tokenizer)")
    label = model if model is not None else str(settings.base_model_assets_path or settings.base_model_architecture)
    return DataChoice(settings, label, folder, named or max_seq_length is not None)


def _flagged(message: str, from_flags: set[str]) -> str:
    """A pipeline setting message, named by this command's flag when the flag gave the value."""
    setting, _, rest = message.partition(":")
    name, _, key = setting.partition(".")
    if name in FLAGS and name in from_flags:
        return f"{FLAGS[name]}{' ' + key if key else ''}:{rest}"
    return message


def load_tokenizer(choice: DataChoice):
    """The tokenizer as training sets it up (chat template included), or one `error:` line naming --model."""
    from trainer.errors import SettingsError
    from trainer.model.assets import load_counting_tokenizer, resolve_tokenizer_dir

    try:
        folder = choice.tokenizer_dir or resolve_tokenizer_dir(choice.settings)
        return load_counting_tokenizer(folder, choice.settings.trust_remote_code)
    except SettingsError as exc:
        message = str(exc).replace(
            "set base_model_assets_path to a local model folder", "pass --model with a local model or tokenizer folder"
        )
        fail(_flagged(message, {"base_model_architecture"}))
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        fail(f"--model {choice.model}: can't load its tokenizer ({type(exc).__name__}: {first})")


def check_report_target(report: Path | None, path: Path) -> Path | None:
    """The quarantine file beside `--report`, after refusing targets we must not write: a link, a
    device or FIFO, or a file inside the data folder (the next validation would read it as data)."""
    if report is None:
        return None
    if not report.name or report.name in (".", "..") or report.is_dir():
        fail(f"--report {str(report)!r}: name a file to write the JSON report to (e.g. report.json)")
    quarantine = report.with_suffix(".quarantine.jsonl")
    for target in (report, quarantine):
        if target.is_symlink() or (target.exists() and not target.is_file()):
            fail(f"--report {report}: {target} is a link or not a regular file (a device, a FIFO); name a plain file")
    if path.is_dir() and any(p.resolve().is_relative_to(path.resolve()) for p in (report, quarantine)):
        fail(
            f"--report {report}: inside the data folder, where the next validation would read it as data; write it "
            "elsewhere"
        )
    return quarantine


def read_rows(path: Path, choice: DataChoice, tokenizer, report: Path | None = None):
    """Validate `path` as `run` would with these settings (the report and quarantine file written
    when `report` is given): (ValidationReport, valid examples), or one `error:` line, exit 2."""
    from trainer.data.contracts.report import write_report
    from trainer.data.contracts.validate import options_from, validate_dataset
    from trainer.errors import ContractError, DataUnusableError

    quarantine = check_report_target(report, path)
    settings = choice.settings
    scratch = Path(tempfile.mkdtemp(prefix="llm-trainer-rows-"))  # the valid rows on disk, not in memory
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    try:
        result, examples = validate_dataset(
            path,
            None,
            tokenizer=tokenizer if choice.count_tokens else None,
            max_seq_length=settings.max_seq_length if choice.count_tokens else None,
            examples_path=scratch / "examples.arrow",
            **options_from(settings),
        )
    except (DataUnusableError, ContractError) as exc:
        fail(str(exc), 2)
    if tokenizer is not None:
        from trainer.model.templates import template_warnings

        result.warnings.extend(template_warnings(tokenizer))
    if report is not None:
        try:
            write_report(result, report_path=report, quarantine_path=quarantine)
        except OSError as exc:
            fail(f"--report {report}: can't write it ({exc.strerror or exc})", 2)
    return result, examples
