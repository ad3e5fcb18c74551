"""Test set-up: every test session gets its own state folder, offline and quiet.

The environment is set here, at import, before any test module imports prefect or mlflow: both
read their settings once at import time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import pytest

from tests.housekeeping import SETUP_TIMES, register_for_cleanup

pytest_plugins = ("tests.housekeeping",)

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="llm-trainer-tests-"))
register_for_cleanup(_SESSION_HOME)
os.environ["LLM_TRAINER_HOME"] = str(_SESSION_HOME / "state")
os.environ["PREFECT_HOME"] = str(_SESSION_HOME / "prefect")
for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PREFECT_API_URL"):
    os.environ.pop(key, None)
os.environ.update(
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    DO_NOT_TRACK="true",
    MLFLOW_DISABLE_TELEMETRY="true",
    GX_ANALYTICS_ENABLED="False",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    TOKENIZERS_PARALLELISM="false",
    # One compute thread per process, here and in every process a test starts. OpenMP threads that
    # spin-wait for a core another process holds made training 2-8x slower beside a busy neighbour or
    # a second pytest-xdist worker (the tiny model's build: 10 s -> 68 s; the suite on two workers
    # took 20:00). Measured on 2 idle cores: one session 14:39 with two threads, 18:02 with one; two
    # xdist workers with one thread each (`make test`) 13:03.
    OMP_NUM_THREADS="1",
    MKL_NUM_THREADS="1",
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
)
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)

REPO = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO / "examples" / "data" / "customer-support" / "chat"


# --- built once per session, before the first timed test ------------------------------------------
# pytest-timeout charges a fixture's set-up to the test that first asks for it; a tiny model built
# inside one test's budget on a loaded machine fails that test and, re-raised, every later one.
# So what many tests read is built after collection, outside every timeout, and only when a
# collected test needs it. A failure stops the session with its reason, once.
_SESSION_ASSETS: dict[str, object] = {}


def _build_tiny_model() -> Path:
    from trainer.model.tiny import ensure_tiny_model

    return ensure_tiny_model()


def _build_tokenizer_folder() -> Path:
    """The tiny model's tokenizer alone, as a local model folder (token checks need no weights)."""
    import json

    from trainer.model.tiny import build_tokenizer

    folder = _SESSION_HOME / "tokenizer"
    build_tokenizer().save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return folder


_BUILDERS = {"tiny_model_dir": _build_tiny_model, "tokenizer_folder": _build_tokenizer_folder}


def pytest_collection_finish(session):
    needed = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    for name, build in _BUILDERS.items():
        if name not in needed:
            continue
        started = time.monotonic()
        try:
            _SESSION_ASSETS[name] = build()
        except Exception as exc:  # any failure ends the session with its reason, once
            pytest.exit(f"session set-up failed: {name}: {type(exc).__name__}: {exc}", returncode=1)
        session.config.stash.setdefault(SETUP_TIMES, {})[name] = time.monotonic() - started


def _session_asset(name: str):
    if name not in _SESSION_ASSETS:  # a test collected on its own after set-up (e.g. by a plugin)
        _SESSION_ASSETS[name] = _BUILDERS[name]()
    return _SESSION_ASSETS[name]


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    return _session_asset("tiny_model_dir")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from trainer.model.loading import load_tokenizer

    return load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="session")
def tokenizer_folder() -> Path:
    return _session_asset("tokenizer_folder")


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    # A busy 2-core machine can take minutes to start the server.
    with prefect_test_harness(server_startup_timeout=240), _no_retry_delays():
        yield


@pytest.fixture(scope="session")
def prefect_env(prefect_server) -> dict[str, str]:
    """The environment that sends a CLI subprocess's flow runs to this session's Prefect server, so
    it does not start a temporary server of its own (8-14 s each; tests/integration/test_trust_runs.py
    keeps the temporary-server path under test)."""
    from prefect.settings import PREFECT_API_URL

    return {"PREFECT_API_URL": PREFECT_API_URL.value()}


@contextlib.contextmanager
def _no_retry_delays():
    """Flows run in this process retry their tasks at once: which errors are retried is under test,
    the seconds between attempts are not (each test would sleep them for real)."""
    from prefect import Task

    import tasks

    patch = pytest.MonkeyPatch()
    for task in vars(tasks).values():
        if isinstance(task, Task) and task.retries:
            patch.setattr(task, "retry_delay_seconds", [0] * task.retries)
    try:
        yield
    finally:
        patch.undo()


@pytest.fixture
def single_thread():
    """Repeatable arithmetic for exact-equality tests: multi-threaded CPU reductions may sum in a
    different order from run to run, and AdamW turns that noise on near-zero gradients into
    lr-sized steps."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_jsonl(path: Path, records: list) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


@pytest.fixture(autouse=True)
def _no_exported_tracking_uri():
    """`mlflow.set_tracking_uri()` also exports MLFLOW_TRACKING_URI; a later test's subprocess would
    inherit it and record its runs in another store. The session starts without it: keep it so."""
    yield
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(key, None)
