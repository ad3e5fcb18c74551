"""`llm-trainer serve`: a registered version answering prompts over REST (MLflow's scoring server)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.app import ConfigOption, PresetOption, SetOption, app, fail, load, quiet_environment


@app.command()
def serve(
    model: Annotated[
        str | None, typer.Argument(help="Registered model name (default: the model of the current settings).")
    ] = None,
    alias: Annotated[str, typer.Option("--alias", help="Serve the version this alias points to.")] = "champion",
    version: Annotated[str | None, typer.Option("--version", help="Serve this version instead of an alias.")] = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 5000,
    config: ConfigOption = None,
    preset: PresetOption = None,
    sets: SetOption = [],  # noqa: B006
) -> None:
    """Serve a registered version over REST: POST /invocations, GET /ping. Ctrl-C stops it and its children.

    The body is MLflow's scoring format, e.g. {"inputs": ["How do I reset my password?"], "params": {"max_new_tokens":
    64}} or {"dataframe_records": [{"prompt": "..."}]}; the answer is {"predictions": ["..."]}."""
    if version is not None and not version.isdigit():
        fail(f"--version: expected a version number such as 3, got {version!r}")
    name = model or load(preset, config, sets).model_name
    quiet_environment()
    from trainer.errors import SettingsError
    from trainer.registry.scoring_server import (
        port_is_free,
        resolve_served_model,
        start_server,
        stop_server,
        wait_until_ready,
    )

    try:
        served = resolve_served_model(name, None if version else alias, version)
    except SettingsError as exc:
        fail(str(exc), 1)
    if not port_is_free(host, port):
        fail(f"--port {port}: {host}:{port} is already in use; pick another with --port")
    which = f"@{served.alias} = version {served.version}" if served.alias else f"version {served.version}"
    typer.echo(f"Starting MLflow's scoring server for {served.name} {which} on http://{host}:{port} ...", err=True)
    process = start_server(served, host, port)
    try:
        if not wait_until_ready(process, host, port):
            fail(
                f"the scoring server for {served.uri} did not start (exit code {process.poll()}); see its output above",
                1,
            )
        typer.echo(f"Serving {served.name} {which} at http://{host}:{port}/invocations (Ctrl-C stops it)", err=True)
        typer.echo(
            f"  curl -s http://{host}:{port}/invocations -H 'Content-Type: application/json' "
            '-d \'{"inputs": ["My order has not arrived yet, can you help?"], "params": {"max_new_tokens": 48}}\'',
            err=True,
        )
        code = process.wait()
        if code:
            fail(f"the scoring server exited with code {code}", 1)
    except KeyboardInterrupt:
        typer.echo("Stopping the scoring server ...", err=True)
    finally:
        stop_server(process)
