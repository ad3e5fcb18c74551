"""Our subclass of the transformers `Trainer` and its callbacks. Imported lazily (transformers is
heavy); `trainer.training` is the entry point.

What the subclass adds to the stock Trainer, and why:
- **Atomic checkpoints**: the Trainer writes `checkpoint-N/` in place, file by file, so a kill
  mid-save leaves a folder that looks like a checkpoint and isn't. We let it write into
  `<checkpoints>/.staging/`, add our settings and a completion marker, fsync, and rename the folder
  into place: a `checkpoint-N/` folder is always complete. Rotation then runs on the real folder.
- **Training metrics**: non-padding tokens per second and token accuracy on the supervised tokens,
  computed from the logits the loss already produced (an argmax, no extra forward pass).
- **Several processes (DDP under torchrun)**: every rank writes its own RNG state into the staged
  folder, all ranks meet at a barrier, and rank 0 alone marks, renames and rotates; the counters
  behind the metrics are summed over ranks, so tokens/s is the whole job's.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import signal
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import rotate_checkpoints

log = logging.getLogger("llm_trainer.training")

STAGING = ".staging"
COMPLETE_MARKER = "llm_trainer_checkpoint.json"
IGNORE_INDEX = -100


def _fsync_tree(path: Path) -> None:
    for item in sorted(path.rglob("*")):
        if item.is_file():
            with item.open("rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def peak_memory_gib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


class PipelineTrainer(Trainer):
    def __init__(self, *args, settings_yaml: str = "", checkpoint_meta: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._settings_yaml = settings_yaml
        self._checkpoint_meta = checkpoint_meta or {}
        self._staging = False
        self._window_tokens = 0
        self._window_correct = 0
        self._window_supervised = 0
        self._window_start = time.perf_counter()
        self.non_padding_tokens = 0  # over the whole run (this process), for throughput reports
        self.batch_positions = 0  # tokens + padding the model ran on

    # --- atomic checkpoints -------------------------------------------------------------------
    def _get_output_dir(self, trial) -> str:
        root = super()._get_output_dir(trial)
        return os.path.join(root, STAGING) if self._staging else root

    def _save_checkpoint(self, model, trial) -> None:
        root = Path(super()._get_output_dir(trial))
        staging_root = root / STAGING
        name = f"checkpoint-{self.state.global_step}"
        # Rank 0 clears what a killed save left behind; the others wait, or they could delete files
        # rank 0 has already started writing (a no-op barrier with one process).
        if self.args.should_save and (staging_root / name).exists():
            shutil.rmtree(staging_root / name)
        self.accelerator.wait_for_everyone()
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = False
        staged = staging_root / name
        # Every rank has written its rng_state_<rank>.pth into the staged folder before rank 0 seals it.
        self.accelerator.wait_for_everyone()
        if not self.args.should_save:
            self.accelerator.wait_for_everyone()  # rank 0 renames the folder; see below
            return
        _maybe_crash_during_save(self.state.global_step, Path(self.args.output_dir).parent)
        (staged / "llm_trainer_settings.yaml").write_text(self._settings_yaml, encoding="utf-8")
        # Written last: its presence in a renamed folder means every other file was written.
        meta = {**self._checkpoint_meta, "global_step": self.state.global_step, "epoch": self.state.epoch,
                "processes": self.args.world_size, "saved_at": time.time()}
        (staged / COMPLETE_MARKER).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        _fsync_tree(staged)
        final = root / name
        if final.exists():  # re-saving the same step after a resume
            shutil.rmtree(final)
        os.replace(staged, final)
        fd = os.open(root, os.O_RDONLY)  # make the rename itself durable
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if self.args.save_total_limit:
            rotate_checkpoints(output_dir=str(root), save_total_limit=self.args.save_total_limit, use_mtime=False)
        # The other ranks go on once checkpoint-N is in place, so no rank can start the next save
        # (or leave train()) before this one is sealed.
        self.accelerator.wait_for_everyone()

    # --- metrics ------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.get("labels")
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if labels is not None and getattr(outputs, "logits", None) is not None:
            with torch.no_grad():
                shifted = labels[..., 1:]
                mask = shifted != IGNORE_INDEX
                predictions = outputs.logits[..., :-1, :].argmax(-1)
                self._window_correct += int(((predictions == shifted) & mask).sum())
                self._window_supervised += int(mask.sum())
                if "attention_mask" in inputs:
                    tokens = int(inputs["attention_mask"].sum())
                else:  # flattened batches carry no padding
                    tokens = int(inputs["input_ids"].numel())
                self._window_tokens += tokens
                self.non_padding_tokens += tokens
                self.batch_positions += int(inputs["input_ids"].numel())
        return (loss, outputs) if return_outputs else loss

    def _sum_over_ranks(self, *values: int) -> list[int]:
        if self.args.world_size <= 1:
            return list(values)
        total = torch.tensor(values, dtype=torch.float64, device=self.args.device)
        torch.distributed.all_reduce(total)
        return [int(v) for v in total.tolist()]

    def token_totals(self) -> tuple[int, int]:
        """(non-padding tokens, tokens + padding) over all ranks; a collective under DDP, so every
        rank calls it."""
        tokens, positions = self._sum_over_ranks(self.non_padding_tokens, self.batch_positions)
        return tokens, positions

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # the Trainer logs on every rank at the same steps, so the all-reduce meets
            elapsed = max(time.perf_counter() - self._window_start, 1e-9)
            tokens, correct, supervised = self._sum_over_ranks(self._window_tokens, self._window_correct, self._window_supervised)
            logs["tokens_per_second"] = tokens / elapsed
            if supervised:
                logs["token_accuracy"] = correct / supervised
            logs["peak_memory_gib"] = peak_memory_gib()
            self._window_tokens = self._window_correct = self._window_supervised = 0
            self._window_start = time.perf_counter()
        super().log(logs, start_time)


def build_collator(tokenizer, packed: bool):
    """Flattened (padding-free) batches with position ids restarting per example, or padding."""
    if packed:
        from transformers import DataCollatorWithFlattening

        # The first label of each example becomes -100, so no token learns across a boundary;
        # the attention boundaries come from the restarting position ids.
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX)
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")


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
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.started = time.perf_counter()
        self.first_step = state.global_step
        self.every = max(1, state.max_steps // 20)
        self.loss = "-"
        self.progress = None
        if not Console().is_terminal:
            return
        self.progress = Progress(
            TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(), TimeRemainingColumn(),
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


def _maybe_crash_during_save(step: int, output_dir: Path) -> None:
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
    raises a RuntimeError, which the Prefect task treats as transient and retries. Unset in normal
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
        raise RuntimeError(f"simulated crash at step {self.step} (LLM_TRAINER_CRASH_AT_STEP)")
