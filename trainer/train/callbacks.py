"""The Trainer callbacks: metrics to a sink, a progress bar and periodic held-out scores.

No test hooks live here: the tests inject their faults from outside (tests/faults/).
"""

from __future__ import annotations

import logging
import time

from transformers import TrainerCallback

log = logging.getLogger("llm_trainer.training")


class MetricsCallback(TrainerCallback):
    """Forwards the Trainer's logs to a sink (MLflow, in the pipeline) and keeps the loss series."""

    KEYS = ("loss", "learning_rate", "grad_norm", "tokens_per_second", "token_accuracy", "peak_memory_gib", "epoch")

    def __init__(self, sink=None):
        self.sink = sink
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        values = {k: float(v) for k, v in (logs or {}).items() if k in self.KEYS and isinstance(v, (int, float))}
        if "loss" in values:
            self.losses.append(values["loss"])
            values["train_loss"] = values.pop("loss")
        if self.sink is not None and values:
            self.sink(values, state.global_step)


class ProgressCallback(TrainerCallback):
    """A rich progress bar with the loss on a terminal; elsewhere (a Prefect worker's log, the
    pipe of a distributed launch) a log line every 5 % of the iterations."""

    def on_train_begin(self, args, state, control, **kwargs):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.started = time.perf_counter()
        self.first_step = state.global_step
        self.every = max(1, state.max_steps // 20)
        self.loss = "-"
        self.progress = None
        if not Console().is_terminal:
            return
        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, loss="-")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)
            return
        self._emit_pending()  # the previous due step had no log of its own
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.pending = (state.global_step, state.max_steps)  # emitted once this step's loss is logged

    def _emit_pending(self):
        if getattr(self, "pending", None) is None:
            return
        step, total = self.pending
        self.pending = None
        rate = (step - self.first_step) / max(time.perf_counter() - self.started, 1e-9)
        left = (total - step) / rate if rate else float("nan")
        log.info("training: step %d/%d, loss %s, %.2f it/s, ~%.0fs left", step, total, self.loss, rate, left)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = f"{logs['loss']:.4f}"
            if self.progress is not None:
                self.progress.update(self.task, loss=self.loss)
        self._emit_pending()

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
        self._emit_pending()


class PeriodicEvalCallback(TrainerCallback):
    """Held-out loss, perplexity and token accuracy every N iterations, logged at that step.

    Scoring uses no random numbers and a separate data order, so it does not disturb exact resume.
    """

    def __init__(self, every: int, score_fn, sink=None):
        self.every, self.score_fn, self.sink = every, score_fn, sink

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every or state.global_step == state.max_steps:
            return
        metrics = self.score_fn(model)
        if self.sink is not None and metrics:
            self.sink(metrics, state.global_step)
