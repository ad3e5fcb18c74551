"""`llm-trainer`: the command line. Each module registers its commands on the one typer app."""

import signal
import sys

# Importing a module registers its commands.
from flows.cli import (
    catalog,
    data,
    deploy,
    registry,
    run,
    serve,
    tokens,
)
from flows.cli.app import app


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so that whatever a command
    started is stopped by the same `finally` blocks (the scoring server, a run's MLflow run closed as
    KILLED) instead of the process vanishing and leaving them behind."""


_terminated = False


def _on_sigterm(signum, frame) -> None:
    global _terminated
    _terminated = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second SIGTERM must not cut the cleanup short
    raise Terminated()


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(143 if _terminated else 130)
    except SystemExit:
        if _terminated:  # click turned the interrupt into "Aborted!" (exit 1): say it was SIGTERM
            sys.exit(143)
        raise
