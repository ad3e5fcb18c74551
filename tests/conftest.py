"""Test set-up: every test session gets its own state folder, offline and quiet.

The environment is set here, at import, before any test module imports prefect or mlflow: both
read their settings once at import time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="llm-trainer-tests-"))
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
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
)
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)

REPO = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO / "examples" / "data" / "customer-support" / "chat"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from trainer.model.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from trainer.model.loading import load_tokenizer

    return load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    # A busy 2-core machine can take minutes to start the server.
    with prefect_test_harness(server_startup_timeout=240):
        yield


@pytest.fixture(scope="session")
def tokenizer_folder(tmp_path_factory) -> Path:
    """The tiny model's tokenizer alone, as a local model folder (token checks need no weights)."""
    import json

    from trainer.model.tiny import build_tokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer().save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return folder


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
