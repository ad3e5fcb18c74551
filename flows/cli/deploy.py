"""Beyond this process: `submit` a run to a Prefect deployment, `join` a multi-node training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import ConfigOption, SetOption, app, fail, quiet_environment


@app.command()
def submit(
    deployment: Annotated[
        str, typer.Argument(help="The deployment: NAME or llm-trainer/NAME (`prefect deployment ls`).")
    ] = "llm-trainer/adhoc",
    config: ConfigOption = None,
    sets: SetOption = [],  # noqa: B006
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", "-w", help="Wait for the run, showing its states and logs; exit 1 unless it completes."
        ),
    ] = False,
    timeout: Annotated[
        int | None, typer.Option("--timeout", min=1, help="With --watch: give up waiting after this many seconds.")
    ] = None,
) -> None:
    """Start a run of a Prefect deployment (needs PREFECT_API_URL) with its settings, changed by --config / --set.

    `prefect deployment run --param settings=...` replaces the deployment's whole settings dict; this changes only what
    you pass, checks the result as `run` does, and relative paths are relative to the worker's clone.
    See docs/operations.md."""
    quiet_environment()
    from flows.submit import SubmitError, api_url, submit_to_deployment
    from trainer.errors import SettingsError

    if not api_url():
        fail(
            "PREFECT_API_URL is not set: point it at the Prefect server that holds the deployment (docs/operations.md)"
        )
    try:
        submitted = submit_to_deployment(
            deployment, config, sets, watch=watch, timeout=timeout, echo=lambda line: typer.echo(line, err=True)
        )
    except SettingsError as exc:
        fail(str(exc))
    except SubmitError as exc:
        fail(str(exc), 1)
    typer.echo(submitted.flow_run_id)
    if watch and submitted.final_state != "Completed":
        message = f": {submitted.message}" if submitted.message else ""
        fail(f"flow run {submitted.flow_run_name} ended {submitted.final_state}{message}", 1)


@app.command()
def join(
    spec: Annotated[
        Path,
        typer.Argument(
            help="The spec.json node 0 printed (<run output>/distributed/spec.json, on the shared filesystem)."
        ),
    ],
    node_rank: Annotated[
        int, typer.Option("--node-rank", min=1, help="This node's rank: 1 .. num_nodes-1, each node its own.")
    ],
    wait: Annotated[
        int,
        typer.Option(
            "--wait", min=0, help="Wait up to this many seconds for the spec to appear (start nodes in any order)."
        ),
    ] = 0,
) -> None:
    """Join a multi-node training as node NODE_RANK: runs torchrun for this node's processes (num_nodes > 1).

    Node 0 is the node the flow's train task runs on; it prints this command, with the spec path, when it starts."""
    import logging
    import time

    deadline = time.monotonic() + wait
    while not spec.is_file() and time.monotonic() < deadline:
        time.sleep(1)
    if not spec.is_file():
        fail(f"{spec}: no such spec; run this with the path node 0 printed (it must be on a filesystem both nodes see)")
    quiet_environment()
    logging.getLogger("llm_trainer").setLevel(logging.INFO)
    from trainer.errors import DistributedTrainingError, PipelineError
    from trainer.train.distributed import run_torchrun
    from trainer.train.job import spec_settings

    try:
        settings = spec_settings(spec)
    except (ValueError, KeyError) as exc:
        fail(f"{spec}: not a training spec ({exc})")
    if node_rank >= settings.num_nodes:
        fail(f"--node-rank: {node_rank} is out of range; this training has num_nodes={settings.num_nodes} "
             f"(ranks 1..{settings.num_nodes - 1})")  # fmt: skip
    try:
        run_torchrun(settings, spec, node_rank, log_line=lambda line: typer.echo(line, err=True))
    except (DistributedTrainingError, PipelineError, ValueError, MemoryError) as exc:
        fail(str(exc), 1)
    typer.echo(f"node {node_rank}: training processes finished")
