"""A tracking server that does not answer costs a bounded wait, then one line naming it (no secret).

Real MLflow client calls against real sockets on 127.0.0.1: a closed port (a server that died) and a
listener that accepts and never answers (a hung one). The wait budget itself is computed with
urllib3's own backoff arithmetic, the library that MLflow retries with.
"""

from __future__ import annotations

import socket

import pytest

from tasks.retry import is_transient
from trainer.errors import TrackingUnavailableError
from trainer.registry.client import WAIT_BUDGET, client, unreachable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call_fails(monkeypatch, uri: str, **env: str) -> BaseException:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(Exception) as caught:
        client().get_experiment_by_name("anything")
    return caught.value


def test_a_dead_server_is_one_line_naming_it_without_its_password_and_not_retried_again(monkeypatch):
    port = _closed_port()
    exc = _call_fails(monkeypatch, f"http://user:s3cretPW@127.0.0.1:{port}", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    error = unreachable(exc)
    assert isinstance(error, TrackingUnavailableError)
    message = str(error)
    assert message.startswith(f"the MLflow server did not answer at http://***@127.0.0.1:{port} (connection refused")
    assert "s3cretPW" not in message and "\n" not in message
    assert not is_transient(error)  # the client already waited its budget: the task does not wait again
    assert unreachable(RuntimeError("wrapped")) is None
    wrapped = RuntimeError("a stage failed")
    wrapped.__cause__ = exc
    assert isinstance(unreachable(wrapped), TrackingUnavailableError)


def test_a_server_that_accepts_and_never_answers_times_out(monkeypatch):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        exc = _call_fails(
            monkeypatch,
            f"http://127.0.0.1:{port}",
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
            MLFLOW_HTTP_REQUEST_TIMEOUT="1",
        )
    error = unreachable(exc)
    assert isinstance(error, TrackingUnavailableError) and "(timed out" in str(error)


def test_an_answer_even_an_error_is_not_unreachable():
    from mlflow.exceptions import MlflowException

    assert unreachable(MlflowException("RESOURCE_DOES_NOT_EXIST: no such run")) is None
    assert unreachable(ValueError("API request to http://x failed")) is None  # only MLflow's own words


def test_the_default_budget_is_about_half_a_minute_for_a_dead_server_and_two_for_a_hung_one():
    from urllib3.util import Retry

    retries = int(WAIT_BUDGET["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        backoff_factor=int(WAIT_BUDGET["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]),
    )
    sleeps = []
    for _ in range(retries):
        retry = retry.increment(method="GET", url="/", error=ConnectionRefusedError())
        sleeps.append(retry.get_backoff_time())
    jitter = retries * float(WAIT_BUDGET["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"])
    dead = sum(sleeps) + jitter
    hung = dead + (retries + 1) * int(WAIT_BUDGET["MLFLOW_HTTP_REQUEST_TIMEOUT"])
    assert 20 <= dead <= 35, sleeps  # docs/security.md: ~30 s
    assert hung <= 135  # ~2 min
