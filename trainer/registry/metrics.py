"""Per-step training metrics, buffered and sent to MLflow from a background thread."""

from __future__ import annotations

import logging
import threading
import time

from trainer.registry.client import client, mlflow_module, unreachable

log = logging.getLogger("llm_trainer.registry")


class _BufferedSink:
    """Per-step metrics, kept with their own step and time and sent to MLflow as one `log_batch`
    every `interval` seconds (and on `flush()`), by one background thread.

    One call per step cost ~10 ms of the training loop's time on 2 CPU cores (a client call per
    step plus the background writer competing for the cores): 5.7 s over 600 tiny-model steps
    (benchmarks/overhead.py). The MLflow UI is at most `interval` seconds behind.

    A tracking server that stops answering never stops training: a send that fails keeps its
    metrics (up to MAX_KEPT) for the next send and says so once; `flush()` at the end tries once
    more and raises TrackingUnavailableError if the server still does not answer (a server that
    answers with an error has refused those metrics: they are dropped with a warning). Our own thread
    rather than MLflow's asynchronous logging: that queue waits the full retry budget for every
    batch and logs each failure, so a dead server made the end of training wait minutes per batch.
    """

    MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch
    MAX_KEPT = 200_000  # metrics held while the server does not answer (~40 MB); the oldest go first

    def __init__(self, run_id: str, interval: float):
        self.run_id, self.interval = run_id, interval
        self.pending: list = []
        self.lock = threading.Lock()
        self.sender: threading.Thread | None = None
        self.failure: BaseException | None = None
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
        with self.lock:
            self.pending.extend(Metric(k, float(v), now, step) for k, v in values.items())
            due = time.monotonic() - self.last_sent >= self.interval or len(self.pending) >= self.MAX_BATCH
        if due and (self.sender is None or not self.sender.is_alive()):
            self.last_sent = time.monotonic()
            self.sender = threading.Thread(target=self._send_pending, name="mlflow-metrics", daemon=True)
            self.sender.start()

    def _send_pending(self) -> None:
        """Send what is pending. A server that did not answer: keep the rest for the next send (up to
        MAX_KEPT). One that answered with an error refused that batch: dropped with a warning, as
        training is not failed for its metrics."""
        with self.lock:
            pending, self.pending = self.pending, []
        for start in range(0, len(pending), self.MAX_BATCH):
            batch = pending[start : start + self.MAX_BATCH]
            try:
                self.client.log_batch(self.run_id, metrics=batch)
            except Exception as exc:
                error = unreachable(exc)
                if error is None:
                    log.warning("MLflow refused %d training metrics (dropped): %s", len(batch), exc)
                    continue
                if self.failure is None:
                    log.warning("Training metrics are kept and sent again later: %s", error)
                self.failure = error
                with self.lock:
                    self.pending[:0] = pending[start:]
                    del self.pending[: max(0, len(self.pending) - self.MAX_KEPT)]
                return
        self.failure = None

    def flush(self) -> None:
        """Wait for the send under way, send what is left, and raise if it could not be sent."""
        if self.sender is not None:
            self.sender.join()
        self._send_pending()
        if self.failure is not None:
            raise self.failure


_open_sinks: list[_BufferedSink] = []


def metrics_sink(run_id: str, interval: float = 5.0):
    """A callable the trainer reports per-step metrics to (it knows nothing of MLflow). Buffered and
    sent by a background thread so the training loop never waits on the tracking store; `flush()` at
    the end."""
    sink = _BufferedSink(run_id, interval)
    _open_sinks.append(sink)
    return sink


def flush() -> None:
    """Send every sink's buffered metrics; TrackingUnavailableError when the server does not answer."""
    while _open_sinks:
        _open_sinks.pop().flush()
    mlflow_module().flush_async_logging()
