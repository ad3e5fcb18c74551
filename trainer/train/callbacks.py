"""The Trainer callbacks: metrics to a sink, a progress bar, periodic held-out scores, and the test
hooks that crash training on purpose (so tests can prove retries and resumes continue exactly).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from transformers import TrainerCallback

from trainer.errors import TransientError

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


def maybe_crash_during_save(step: int, output_dir: Path) -> None:
    """Test hook: `LLM_TRAINER_CRASH_DURING_SAVE_AT_STEP=N` SIGKILLs this process halfway through
    writing checkpoint N (files written, not yet renamed into place), once per output folder."""
    target = int(os.environ.get("LLM_TRAINER_CRASH_DURING_SAVE_AT_STEP", "0") or 0)
    marker = output_dir / f".crashed-during-save-{target}"
    if target and step == target and not marker.exists():
        marker.write_text("killed mid-checkpoint once, on purpose")
        os.kill(os.getpid(), signal.SIGKILL)


class CrashForTesting(TrainerCallback):
    """Test hook: `LLM_TRAINER_CRASH_AT_STEP=N` ends training at step N, once per output folder.

    `LLM_TRAINER_CRASH_MODE=kill` sends SIGKILL to this process (a hard crash); `raise` (default)
    raises a TransientError, which the Prefect task retries (as it would a crashed worker). Unset in normal
    use; it exists so tests can prove that retries and resumes continue exactly.
    """

    def __init__(self, output_dir: Path):
        self.step = int(os.environ.get("LLM_TRAINER_CRASH_AT_STEP", "0") or 0)
        self.mode = os.environ.get("LLM_TRAINER_CRASH_MODE", "raise")
        self.marker = output_dir / f".crashed-at-step-{self.step}"

    def on_step_end(self, args, state, control, **kwargs):
        if not self.step or state.global_step != self.step or self.marker.exists():
            return
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        self.marker.write_text("crashed here once, on purpose (LLM_TRAINER_CRASH_AT_STEP)")
        log.warning("LLM_TRAINER_CRASH_AT_STEP=%d: crashing on purpose (%s)", self.step, self.mode)
        if self.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise TransientError(f"simulated crash at step {self.step} (LLM_TRAINER_CRASH_AT_STEP)")
