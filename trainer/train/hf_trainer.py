"""Our subclass of the transformers `Trainer` and its callbacks. Imported lazily (transformers is
heavy); `trainer.train.loop` is the entry point.

What the subclass adds to the stock Trainer, and why:
- **Atomic checkpoints**: the Trainer writes `checkpoint-N/` in place, file by file, so a kill
  mid-save leaves a folder that looks like a checkpoint and isn't. We let it write into
  `<checkpoints>/.staging/`, add our settings and a completion marker, fsync, and rename the folder
  into place: a `checkpoint-N/` folder is always complete. Rotation then runs on the real folder.
- **The loss without full-vocabulary logits** (`chunked_loss`, trainer/model/loss.py): the same
  value and gradients as the stock loss, from the final hidden states in chunks (Liger Kernel's
  fused kernel on CUDA with the `gpu` extra); with activation offloading on CUDA, the forward runs
  under `save_on_cpu`, so the checkpointed layer inputs wait in pinned CPU memory.
- **Training metrics**: non-padding tokens per second and token accuracy on the supervised tokens,
  from the loss's own counts of correct predictions (or the stock logits' argmax when it is off).
- **Several processes (DDP under torchrun)**: every rank writes its own RNG state into the staged
  folder, all ranks meet at a barrier, and rank 0 alone marks, renames and rotates; the counters
  behind the metrics are summed over ranks, so tokens/s is the whole job's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import resource
import shutil
import time
from pathlib import Path

import torch
from transformers import Trainer
from transformers.trainer_utils import rotate_checkpoints

from trainer.errors import OutOfSpaceError
from trainer.layout import CHECKPOINT_MARKER, CHECKPOINT_STAGING, SETTINGS_FILE
from trainer.model.loading import activation_offloading
from trainer.model.loss import causal_lm_loss, unsupported_reason
from trainer.model.tokens import IGNORE_INDEX
from trainer.train.checkpoints import file_digests, fsync_tree

log = logging.getLogger("llm_trainer.training")


def peak_memory_gib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


class PipelineTrainer(Trainer):
    def __init__(
        self,
        *args,
        settings_yaml: str = "",
        checkpoint_meta: dict | None = None,
        chunked_loss: bool = True,
        offload_activations: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self._chunked_loss = chunked_loss
        self._offload_activations = offload_activations
        self._chunked_loss_checked = False
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
    def _get_train_sampler(self, train_dataset=None):
        """Length grouping from the lengths stored with the prepared rows: the stock sampler would read
        every row to measure it (a million rows: a minute, and the whole file paged in)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = getattr(dataset, "lengths", None)
        if self.args.train_sampling_strategy == "group_by_length" and lengths is not None:
            from transformers.trainer_pt_utils import LengthGroupedSampler

            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return LengthGroupedSampler(batch, dataset=dataset, lengths=lengths)
        return super()._get_train_sampler(train_dataset)

    def _get_output_dir(self, trial) -> str:
        root = super()._get_output_dir(trial)
        return os.path.join(root, CHECKPOINT_STAGING) if self._staging else root

    def _save_checkpoint(self, model, trial) -> None:
        root = Path(super()._get_output_dir(trial))
        staging_root = root / CHECKPOINT_STAGING
        name = f"checkpoint-{self.state.global_step}"
        # Rank 0 clears what a killed save left behind; the others wait, or they could delete files
        # rank 0 has already started writing (a no-op barrier with one process).
        if self.args.should_save and (staging_root / name).exists():
            shutil.rmtree(staging_root / name)
        self.accelerator.wait_for_everyone()
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        except (OSError, RuntimeError) as exc:
            _raise_if_out_of_space(exc, staging_root / name)
            raise
        finally:
            self._staging = False
        staged = staging_root / name
        # Every rank has written its rng_state_<rank>.pth into the staged folder before rank 0 seals it.
        self.accelerator.wait_for_everyone()
        if not self.args.should_save:
            self.accelerator.wait_for_everyone()  # rank 0 renames the folder; see below
            return
        try:
            self._seal(staged)
        except OSError as exc:
            _raise_if_out_of_space(exc, staged)
            raise
        final = root / name
        if final.exists():  # re-saving the same step after a resume
            shutil.rmtree(final)
        os.replace(staged, final)
        _remove_if_empty(staging_root)  # no empty .staging/ left beside the checkpoints
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

    def _seal(self, staged: Path) -> None:
        """Our settings, then the completion marker (last: its presence means every other file was
        written) with each file's size and sha256, so a resume can tell a truncated file; fsynced."""
        (staged / SETTINGS_FILE).write_text(self._settings_yaml, encoding="utf-8")
        meta = {
            **self._checkpoint_meta,
            "global_step": self.state.global_step,
            "epoch": self.state.epoch,
            "processes": self.args.world_size,
            "saved_at": time.time(),
            "files": file_digests(staged),
        }
        (staged / CHECKPOINT_MARKER).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        fsync_tree(staged)

    # --- loss and metrics ---------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            self._count_tokens(inputs)
        # Offloading wraps the forward only: the checkpointed layer inputs saved here go to pinned
        # CPU memory; the recomputation runs in the backward, outside, and stays on the GPU.
        with activation_offloading(self._offload_activations and model.training):
            if self._use_chunked_loss(model, inputs):
                loss, outputs, correct, supervised = self._chunked_loss_step(model, inputs, num_items_in_batch)
            else:
                loss, outputs = super().compute_loss(
                    model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
                )
                correct, supervised = _logit_accuracy(outputs, inputs.get("labels"))
        if model.training:
            self._window_correct += correct
            self._window_supervised += supervised
        return (loss, outputs) if return_outputs else loss

    def _use_chunked_loss(self, model, inputs) -> bool:
        """The chunked loss when it is on and computes this model's loss exactly; else the stock one."""
        if not self._chunked_loss or "labels" not in inputs:
            return False
        if self.label_smoother is not None or self.compute_loss_func is not None:
            return False
        if not self._chunked_loss_checked:
            self._chunked_loss_checked = True
            reason = unsupported_reason(model)
            if reason is not None:
                log.warning("chunked_loss: %s; using the stock loss (full logits)", reason)
                self._chunked_loss = False
        return self._chunked_loss

    def _chunked_loss_step(self, model, inputs, num_items_in_batch):
        """The stock compute_loss's normalisation, with the loss from the final hidden states: the
        Trainer's token count reaches the loss exactly when the model accepts loss kwargs (as in
        stock), and the DDP rescaling that undoes the gradient averaging is the same."""
        count = num_items_in_batch if self.model_accepts_loss_kwargs else None
        out = causal_lm_loss(model, inputs, num_items_in_batch=count)
        loss = out.loss
        if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs and count is not None:
            scale = self.accelerator.num_processes // self.get_tp_size()
            loss = loss * (scale if self.args.n_gpu <= 1 else self.args.n_gpu)
        return loss, {"loss": loss}, out.correct, out.tokens

    def _count_tokens(self, inputs) -> None:
        if "attention_mask" in inputs:
            tokens = int(inputs["attention_mask"].sum())
        else:  # flattened batches carry no padding
            tokens = int(inputs["input_ids"].numel())
        self._window_tokens += tokens
        self.non_padding_tokens += tokens
        self.batch_positions += int(inputs["input_ids"].numel())

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
            tokens, correct, supervised = self._sum_over_ranks(
                self._window_tokens, self._window_correct, self._window_supervised
            )
            logs["tokens_per_second"] = tokens / elapsed
            if supervised:
                logs["token_accuracy"] = correct / supervised
            logs["peak_memory_gib"] = peak_memory_gib()
            self._window_tokens = self._window_correct = self._window_supervised = 0
            self._window_start = time.perf_counter()
        super().log(logs, start_time)


def _logit_accuracy(outputs, labels) -> tuple[int, int]:
    """(correct, supervised) from the logits the stock loss produced: argmax against the shifted labels."""
    if labels is None or getattr(outputs, "logits", None) is None:
        return 0, 0
    with torch.no_grad():
        shifted = labels[..., 1:]
        mask = shifted != IGNORE_INDEX
        predictions = outputs.logits[..., :-1, :].argmax(-1)
        return int(((predictions == shifted) & mask).sum()), int(mask.sum())


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (a save in flight) or already gone
        folder.rmdir()


def _raise_if_out_of_space(exc: BaseException, staged: Path) -> None:
    """A full disk during a save (torch reports it as `RuntimeError: [enforce fail at
    inline_container.cc] ... file write failed`): OutOfSpaceError naming the folder, the partial save
    removed; anything else is left to propagate as it is."""
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc).lower()
    if not full and ("no space left" in text or "file write failed" in text or "unexpected pos" in text):
        full = True
    if not full:
        return
    shutil.rmtree(staged, ignore_errors=True)
    free = shutil.disk_usage(staged.parent if staged.parent.exists() else Path(staged.anchor)).free
    raise OutOfSpaceError(
        f"output_dir: no space left on the device of {staged.parent.parent} while saving {staged.name} "
        f"({free:,} bytes free); free space or set output_dir on a larger disk"
    ) from None
