"""The typer app every `llm-trainer` command registers on, and what the commands share: one-line
errors, the `--config / --preset / --set` options, settings loading and a table helper.

Heavy modules (torch, prefect, mlflow, great_expectations) are imported inside the commands that
need them, so `--help` and a bad setting answer in well under a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from typer.core import TyperGroup


class OneLineErrors(TyperGroup):
    """Every command ends with one `error:` line and exit 1 on an error it did not handle itself, never
    a traceback: a PipelineError says what to fix, a TransientError what failed (a worker process that
    died), an OSError names its file, anything else is a bug whose traceback goes to a file under the
    state folder, named on the line. One place, so the property holds for every command
    (tests/integration/test_fuzz_inputs.py)."""

    def invoke(self, ctx: typer.Context):
        from trainer.errors import PipelineError, TransientError

        try:
            return super().invoke(ctx)
        except _usage_errors() as exc:  # a bad option or value of a command: one line too, exit 2
            name = ctx.invoked_subcommand or ""
            fail(f"{exc.format_message()} (see `llm-trainer {name} --help`)", 2)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # fail()'s exit, --help: typer's own way out
        except (PipelineError, TransientError) as exc:  # transient: it may pass, but it is not a bug either
            fail(str(exc), 1)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}", 1)
        except Exception as exc:
            fail(
                f"unexpected {type(exc).__name__}: {_first_line(exc)} (a bug; its traceback: {_keep_traceback(exc)})", 1
            )


def _usage_errors() -> tuple[type[Exception], ...]:
    """The usage-error classes of the click typer runs on: its vendored copy (typer 0.29+) and click."""
    kinds: list[type[Exception]] = []
    try:
        from typer._click.exceptions import UsageError as Vendored

        kinds.append(Vendored)
    except ImportError:  # pragma: no cover - a typer that uses click itself
        pass
    try:
        from click.exceptions import UsageError

        kinds.append(UsageError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(kinds)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:500]


def _keep_traceback(exc: BaseException) -> str:
    import os
    import time
    import traceback

    from trainer.config import state
    from trainer.redact import redact

    try:
        folder = state.state_dir() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}.txt"
        path.write_text(redact("".join(traceback.format_exception(exc))), encoding="utf-8")
        return str(path)
    except Exception:  # the state folder itself is unusable: say so rather than fail again
        return "not kept: the state folder is not writable"


app = typer.Typer(
    name="llm-trainer",
    help="Fine-tune open LLMs with QLoRA: validate -> resolve -> train -> evaluate -> register -> back up.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file of settings (may name a `preset:`).")
]
PresetOption = Annotated[
    str | None, typer.Option("--preset", "-p", help="Start from a preset (see `llm-trainer presets`).")
]
SetOption = Annotated[list[str], typer.Option("--set", "-s", help="Override one setting: KEY=VALUE (repeatable).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """One `error:` line on stderr and the exit code: no traceback for a mistake the user can fix.
    Redacted: an error may quote a URL with its password."""
    from trainer.redact import redact

    typer.echo(f"error: {redact(message)}", err=True)
    raise typer.Exit(code)


def load(preset: str | None, config: Path | None, sets: list[str]):
    """Settings from preset -> YAML -> --set, or one `error:` line naming the bad setting."""
    from trainer.config.loading import load_settings
    from trainer.errors import SettingsError

    try:
        return load_settings(preset, config, sets)
    except SettingsError as exc:
        fail(str(exc))


def load_for_training(preset: str | None, config: Path | None, sets: list[str]):
    """Settings for a training command: loaded, training data required, quiet environment set."""
    import logging

    from trainer.errors import SettingsError

    settings = load(preset, config, sets)
    try:
        settings.require_training_data()
    except SettingsError as exc:
        fail(str(exc))
    quiet_environment()
    logging.getLogger("llm_trainer").setLevel(logging.INFO)
    return settings


def quiet_environment() -> None:
    """Quiet defaults for the tools we drive, and every log record of this process redacted."""
    from trainer.config.state import apply_environment_defaults
    from trainer.redact import install_log_redaction

    apply_environment_defaults()
    install_log_redaction()


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    title: str | None = None,
    right: Iterable[str] = (),
    show_header: bool = True,
    **console_options,
) -> None:
    """A rich table on stdout; `right` names the right-aligned (numeric) columns."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=show_header)
    right = set(right)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(**console_options).print(table)
