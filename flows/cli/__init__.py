"""`llm-trainer`: the command line. Each module registers its commands on the one typer app."""

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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
