"""`llm-trainer` for tests: in this process (typer's CliRunner) or as a real process.

In-process is the default for the command's own output (its table, JSON, `error:` line and exit
code): it saves the interpreter start and the imports (torch, transformers, GX, mlflow) on every
call. A handful of tests keep a real process where only one can prove it: exit codes of the
installed script, signals, what a fresh interpreter prints, and log output (Prefect's and our
loggers write to the handlers set up for this test session, not to CliRunner's streams).
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

SCRIPT = str(Path(sys.executable).with_name("llm-trainer"))


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def invoke(*args, env: dict[str, str] | None = None, columns: int = 200) -> Result:
    """One `llm-trainer` command, in this process. An exception the command did not handle shows up
    as its traceback on stderr and exit code 1, as in a terminal."""
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns), **(env or {})})
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(traceback.format_exception(result.exception))
    return Result(result.exit_code, result.stdout, stderr)


def run_process(*args, timeout: float = 120, env: dict[str, str] | None = None, **kwargs) -> Result:
    """One `llm-trainer` command as a real process, as a user's shell starts it."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    done = subprocess.run(
        [SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=full_env, **kwargs
    )
    return Result(done.returncode, done.stdout, done.stderr)
