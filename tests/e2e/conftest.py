"""One real stack for the deployment tests (one module): Prefect server, MLflow server (sqlite, local artifacts), the
deployments of prefect.yaml and a process worker, started as a user would and stopped by process
group at the end (the teardown fails if any process is left)."""

from __future__ import annotations

import shutil
import warnings

import pytest

from tests.e2e.api import MlflowRest, PrefectRest
from tests.e2e.servers import Stack


def pytest_collection_modifyitems(items):
    # Everything here starts the real servers: `make test-fast` leaves the folder out by its marker.
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")  # stopped when its module is done: idle servers cost the later tests CPU
def stack(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("e2e-stack")
    # The workers' state folder starts with the tiny model this test session already built (it
    # would otherwise build it again on the first run, about 10 s).
    shutil.copytree(tiny_model_dir, root / "state" / "models" / tiny_model_dir.name)
    stack = Stack.start(root)
    try:
        stack.create_pool()
        stack.cli("prefect", "--no-prompt", "deploy", "--all", timeout=180)
        stack.start_worker()
        yield stack
    finally:
        stack.stop()  # raises if a process group or a marked process survives
        if stack.leftovers_killed:
            warnings.warn(
                f"e2e stack: killed processes that outlived their groups: {stack.leftovers_killed}", stacklevel=2
            )


@pytest.fixture(scope="module")
def mlflow_api(stack) -> MlflowRest:
    return MlflowRest(stack.mlflow_url)


@pytest.fixture(scope="module")
def prefect_api(stack) -> PrefectRest:
    return PrefectRest(stack.prefect_url)


@pytest.fixture()
def logs_on_failure(stack, request):
    """On a failing test, show the worker's and servers' last log lines."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for service in stack.services:
            print(f"--- {service.name} ({service.log})\n{service.tail(60)}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
