"""`llm-trainer serve` as a user runs it: a registered version answers a REST request on loopback,
and Ctrl-C or SIGTERM leaves no process behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest

from tests.conftest import DEMO_DATA

CLI = str(Path(sys.executable).with_name("llm-trainer"))
NAME = "serve-test-model"


@pytest.fixture(scope="module")
def registered(tiny_model_dir, tmp_path_factory) -> str:
    """A version of NAME with `champion` on it: a LoRA adapter on the tiny base, trained 30 steps on the
    demo rows (fewer leave the tiny model answering with newlines only, ~15 s on an idle machine)."""
    from trainer import registry
    from trainer.config import state
    from trainer.config.loading import load_settings
    from trainer.data.contracts.validate import validate_dataset
    from trainer.train.job import TrainJob
    from trainer.train.loop import train

    out = tmp_path_factory.mktemp("serve")
    settings = load_settings("demo", None, ["max_steps=30", "save_every_n_iterations=30", f"output_dir={out}"])
    _, rows = validate_dataset(DEMO_DATA)
    result = train(TrainJob(settings, tiny_model_dir, rows, out), show_progress=False)
    # Registered from a throw-away working folder, deleted afterwards: the registry must not depend on
    # the folder a command ran in (MLflow 3 put logged models in ./mlruns there).
    elsewhere = tmp_path_factory.mktemp("throw-away-cwd")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(elsewhere)
        run_id = registry.create_run("serve-test", "serve-test", {})
        version = registry.log_adapter_model(run_id, Path(result.adapter_dir), tiny_model_dir, None, 4, 16, NAME)
    assert not (elsewhere / "mlruns").exists() and not any(elsewhere.iterdir())
    shutil.rmtree(elsewhere)
    assert (
        state.state_dir()
        in Path(urlparse(registry.client().get_model_version_download_uri(NAME, version.version)).path).parents
    )
    registry.set_alias(NAME, "champion", str(version.version))
    registry.finish_run(run_id)
    return str(version.version)


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(port: int, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 0), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_serve_answers_over_rest_and_a_signal_leaves_no_process(registered, stop, code):
    port = _free_port()
    cli = subprocess.Popen(
        [CLI, "serve", NAME, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # like a terminal: Ctrl-C reaches the CLI's own process group only
        # As in a terminal, SIGINT is not ignored, however the tests were started (`nohup make test &`
        # ignores it, and a process started with SIGINT ignored keeps it ignored: Ctrl-C would do nothing).
        preexec_fn=_sigint_as_in_a_terminal,
        env={**os.environ, "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT)},
    )  # fmt: skip
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and cli.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(1)
        assert cli.poll() is None, cli.communicate()
        children = psutil.Process(cli.pid).children(recursive=True)
        assert children, "the scoring server runs as a child of the CLI"
        answer = _post(
            port, {"inputs": ["My order has not arrived yet, can you help?"], "params": {"max_new_tokens": 8}}
        )
        assert isinstance(answer["predictions"][0], str) and answer["predictions"][0].strip()
        frame = _post(port, {"dataframe_records": [{"prompt": "Where is my parcel?"}, {"prompt": "Refund please"}]})
        assert len(frame["predictions"]) == 2 and all(p.strip() for p in frame["predictions"])
        # Bounded work per request: past a documented cap, a 400 at once, before any generation.
        for body, needle in (
            ({"inputs": ["Where is my parcel?"], "params": {"max_new_tokens": 10**9}}, "from 1 to 2048"),
            ({"inputs": ["word " * 20_000]}, "at most 8192"),
        ):
            started = time.monotonic()
            with pytest.raises(urllib.error.HTTPError) as refused:
                _post(port, body)
            assert refused.value.code == 400 and needle in refused.value.read().decode(), needle
            assert time.monotonic() - started < 30
        if stop == signal.SIGINT:  # once: a request longer than the server's timeout stops when answered
            _a_long_request_stops_when_answered(port, children)
    finally:
        os.kill(cli.pid, stop)
        out, err = cli.communicate(timeout=120)
    assert cli.returncode == code, err
    assert f"Serving {NAME} @champion = version {registered}" in err
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], f"left behind: {[p.cmdline() for p in alive]}"


REQUEST_TIMEOUT = 12  # the scoring server's, for these tests (60 s by default)


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes if p.is_running())


def _a_long_request_stops_when_answered(port: int, processes: list[psutil.Process]) -> None:
    """64 prompts of up to 2048 new tokens each take the tiny model minutes: the request is answered
    (503, naming the budget) within the server's timeout, and then the server is idle, not generating on."""
    started = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as stopped:
        _post(port, {"inputs": [f"Tell me a long story number {i}" for i in range(64)],
                     "params": {"max_new_tokens": 2048}})  # fmt: skip
    assert stopped.value.code == 503 and "time budget" in stopped.value.read().decode()
    assert time.monotonic() - started < REQUEST_TIMEOUT + 5
    before = _cpu_seconds(processes)
    time.sleep(3)
    assert _cpu_seconds(processes) - before < 0.5, "the server went on working after it answered"


def test_serve_names_a_missing_model_in_one_line():
    command = [CLI, "serve", "no-such-model", "--port", str(_free_port())]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: no-such-model@champion: no such registered model")
    assert "Traceback" not in result.stderr
