"""Per-step training metrics, buffered and sent to MLflow asynchronously."""

from __future__ import annotations

import time

from trainer.registry.client import client, mlflow_module


class _BufferedSink:
    """Per-step metrics, kept with their own step and time and sent to MLflow as one asynchronous
    `log_batch` every `interval` seconds (and on `flush()`).

    One call per step cost ~10 ms of the training loop's time on 2 CPU cores (a client call per
    step plus the background writer competing for the cores): 5.7 s over 600 tiny-model steps
    (benchmarks/overhead.py). The MLflow UI is at most `interval` seconds behind.
    """

    MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch

    def __init__(self, run_id: str, interval: float):
        self.run_id, self.interval = run_id, interval
        self.pending: list = []
        self.last_sent = time.monotonic()
        self.client = client()
        # A retried attempt resumes from its last checkpoint and replays the steps after it, which
        # the failed attempt already logged: those are not logged twice.
        self.logged_up_to = max((m.step for m in self.client.get_metric_history(run_id, "train_loss")), default=0)

    def __call__(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        if step <= self.logged_up_to:
            return
        now = int(time.time() * 1000)
        self.pending.extend(Metric(k, float(v), now, step) for k, v in values.items())
        if time.monotonic() - self.last_sent >= self.interval or len(self.pending) >= self.MAX_BATCH:
            self.send()

    def send(self) -> None:
        pending, self.pending = self.pending, []
        for start in range(0, len(pending), self.MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=pending[start : start + self.MAX_BATCH], synchronous=False)
        self.last_sent = time.monotonic()


_open_sinks: list[_BufferedSink] = []


def metrics_sink(run_id: str, interval: float = 5.0):
    """A callable the trainer reports per-step metrics to (it knows nothing of MLflow). Buffered and
    asynchronous so the training loop never waits on the tracking store; `flush()` at the end."""
    sink = _BufferedSink(run_id, interval)
    _open_sinks.append(sink)
    return sink


def flush() -> None:
    """Send buffered metrics and wait for asynchronously logged ones to reach the store."""
    while _open_sinks:
        _open_sinks.pop().send()
    mlflow_module().flush_async_logging()
