"""Run the pipeline on a Prefect deployment instead of in this process.

`llm-trainer run --set running_on=POOL` (with `PREFECT_API_URL` set) submits these settings to
the `llm-trainer` deployment on work pool POOL (`POOL/QUEUE` narrows it to a queue): a worker on
that pool trains, e.g. on a GPU node. `llm-trainer submit DEPLOYMENT --set KEY=VALUE` starts from
the deployment's own settings and changes only what you pass, which `prefect deployment run
--param settings=...` cannot do (Prefect replaces the whole `settings` dict).

The settings are checked here first, with the CLI's one-line messages; Prefect checks them again
against the deployment's schema when it creates the run, and the flow validates them on the worker.
Relative paths are relative to the worker's working directory, the clone prefect.yaml's pull step
points at; a path inside this clone is sent relative to it, so the same clone elsewhere resolves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config.loading import build_settings, parse_set_flags, read_yaml_file
from trainer.config.presets import preset_values
from trainer.config.settings import Settings
from trainer.config.state import PROJECT_ROOT
from trainer.errors import SettingsError

FLOW_NAME = "llm-trainer"
ADHOC = "adhoc"
PATH_SETTINGS = tuple(name for name, f in Settings.model_fields.items() if "Path" in str(f.annotation))


class SubmitError(RuntimeError):
    """Submitting failed: one line saying why and what to do."""


@dataclass
class Submitted:
    flow_run_id: str
    flow_run_name: str
    deployment: str
    work_pool: str | None
    url: str | None
    final_state: str | None = None  # with watch: Completed, Failed, Crashed, ...
    message: str = ""


def api_url() -> str | None:
    """Where the Prefect API is; runs are submitted only when it is set explicitly."""
    return os.environ.get("PREFECT_API_URL") or None


def split_running_on(running_on: str) -> tuple[str, str | None]:
    pool, _, queue = running_on.partition("/")
    return pool.strip(), (queue.strip() or None)


def settings_parameter(values: dict[str, Any] | Settings) -> dict[str, Any]:
    """The `settings` flow parameter (JSON) for validated settings or a raw values dict: only the
    settings that were given, with paths inside this clone made relative to its root."""
    data = values.model_dump(mode="json", exclude_unset=True) if isinstance(values, Settings) else dict(values)
    for key in PATH_SETTINGS:
        if data.get(key):
            path = Path(str(data[key])).expanduser()
            if isinstance(values, Settings):  # validated here: relative to this process's directory
                path = path.resolve()
            if path.is_absolute() and path.is_relative_to(PROJECT_ROOT):
                path = path.relative_to(PROJECT_ROOT)
            data[key] = path.as_posix()
    return data


@contextlib.contextmanager
def _in_project_root():
    previous = Path.cwd()
    os.chdir(PROJECT_ROOT)
    try:
        yield
    finally:
        os.chdir(previous)


def check_values(values: dict[str, Any]) -> list[str]:
    """Validate settings meant for a worker, as the CLI does, relative to the clone's root (the
    worker's directory). A path missing here is no error (it is read on the worker, where it must
    exist); the notes returned name each one. Anything else raises the CLI's SettingsError."""
    values, notes = dict(values), []
    with _in_project_root():
        while True:
            try:
                build_settings(values)
                return notes
            except SettingsError as exc:
                key = str(exc).split(":", 1)[0]
                if key not in PATH_SETTINGS or values.get(key) is None:
                    raise
                notes.append(f"{key}: {values[key]} is not here; it must exist on the worker")
                values[key] = None


def layered_values(base: dict[str, Any], config: Path | None, sets: list[str]) -> dict[str, Any]:
    """A deployment's settings, then a YAML file (which may name a `preset:`), then --set flags."""
    values = dict(base)
    if config is not None:
        file_values = read_yaml_file(config)
        if "preset" in file_values:
            values.update(preset_values(str(file_values.pop("preset"))))
        values.update(file_values)
    values.update(parse_set_flags(sets))
    return values


async def _find_deployment(client, running_on: str):
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        WorkPoolFilter,
        WorkPoolFilterName,
    )

    pool, queue = split_running_on(running_on)
    found = await client.read_deployments(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
    )
    found = [d for d in found if queue is None or d.work_queue_name == queue]
    where = f"work pool {pool!r}" + (f", queue {queue!r}" if queue else "")
    if not found:
        raise SubmitError(
            f"running_on: no {FLOW_NAME} deployment on {where} at {api_url()}; deploy one (`prefect deploy --all`, "
            "see docs/operations.md) or set running_on=local to run here"
        )
    if len(found) == 1:
        return found[0]
    adhoc = [d for d in found if d.name == ADHOC]
    if adhoc:
        return adhoc[0]
    names = ", ".join(sorted(f"{FLOW_NAME}/{d.name}" for d in found))
    raise SubmitError(
        f"running_on: {where} has several {FLOW_NAME} deployments ({names}); pick one with `llm-trainer submit NAME`"
    )


async def _read_deployment(client, name: str):
    from prefect.exceptions import ObjectNotFound

    full = name if "/" in name else f"{FLOW_NAME}/{name}"
    try:
        return await client.read_deployment_by_name(full)
    except ObjectNotFound:
        raise SubmitError(f"deployment {full!r} not found at {api_url()}; `prefect deployment ls` lists them") from None


async def _create_run(client, deployment, settings: dict[str, Any]):
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        return await client.create_flow_run_from_deployment(deployment.id, parameters={"settings": settings})
    except PrefectHTTPStatusError as exc:
        # enforce_parameter_schema: the server names the field, e.g. "Validation failed for field
        # 'settings.learning_rate'. Failure reason: 5 is greater than the maximum of 1.0"
        try:
            detail = exc.response.json().get("detail")
        except ValueError:
            detail = None
        raise SubmitError(" ".join(str(detail or exc).split())) from None


async def _watch(flow_run_id, timeout: int | None):
    from prefect.cli.flow_runs_watching import watch_flow_run
    from rich.console import Console

    return await watch_flow_run(flow_run_id, Console(stderr=True), timeout=timeout)


async def _submit(find_deployment, settings_for, watch: bool, timeout: int | None, echo) -> Submitted:
    """Find the deployment, build the `settings` parameter for it, create the run, optionally watch it."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectException
    from prefect.utilities.urls import url_for

    try:
        async with get_client() as client:
            deployment = await find_deployment(client)
            flow_run = await _create_run(client, deployment, settings_for(deployment))
    except (OSError, httpx.HTTPError, PrefectException) as exc:
        raise SubmitError(
            f"Prefect API at {api_url()}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        ) from None
    submitted = Submitted(
        str(flow_run.id), flow_run.name, f"{FLOW_NAME}/{deployment.name}", deployment.work_pool_name, url_for(flow_run)
    )
    echo(
        f"Submitted flow run {flow_run.name!r} ({flow_run.id}) to {submitted.deployment} on work pool "
        f"{deployment.work_pool_name!r}" + (f": {submitted.url}" if submitted.url else "")
    )
    if not watch:
        echo(f"Follow it: prefect flow-run watch {flow_run.id}   (or the Prefect UI)")
        return submitted
    from prefect.exceptions import FlowRunWaitTimeout, FlowRunWatchError

    try:
        finished = await _watch(flow_run.id, timeout)
    except FlowRunWaitTimeout:
        raise SubmitError(
            f"flow run {flow_run.name} still running after {timeout}s; follow it: prefect flow-run watch {flow_run.id}"
        ) from None
    except FlowRunWatchError as exc:
        raise SubmitError(
            f"lost track of flow run {flow_run.name} ({exc}); follow it: prefect flow-run watch {flow_run.id}"
        ) from None
    state = finished.state
    submitted.final_state = state.name if state is not None else "unknown"
    submitted.message = " ".join((state.message or "").split()) if state is not None else ""
    return submitted


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def submit_settings(settings: Settings, watch: bool = False, timeout: int | None = None, echo=_stderr) -> Submitted:
    """Submit validated settings to the deployment on the work pool named by `running_on`."""
    parameter = settings_parameter(settings)
    return asyncio.run(
        _submit(lambda client: _find_deployment(client, settings.running_on), lambda _: parameter, watch, timeout, echo)
    )


def submit_to_deployment(
    deployment: str,
    config: Path | None = None,
    sets: list[str] | None = None,
    watch: bool = False,
    timeout: int | None = None,
    echo=_stderr,
) -> Submitted:
    """Start a run of `deployment` (NAME or llm-trainer/NAME) with its settings changed by `config` and `sets`."""

    def settings_for(found) -> dict[str, Any]:
        values = layered_values((found.parameters or {}).get("settings") or {}, config, sets or [])
        for note in check_values(values):  # SettingsError: the CLI's one-line message
            echo(f"note: {note}")
        return settings_parameter(values)

    return asyncio.run(_submit(lambda client: _read_deployment(client, deployment), settings_for, watch, timeout, echo))
