"""Training a LoRA adapter with the stock transformers `Trainer`.

The Trainer already does what we would otherwise hand-write badly: saving every N steps,
checkpoint rotation, and resuming with optimizer, scheduler, RNG state and data position. We add
the glue: atomic checkpoints that carry the settings (see `hf_trainer`), resume from the latest
complete checkpoint of the same run (so a retried task continues instead of starting over),
packed batches, a progress bar with the loss, and a metrics sink the caller wires to its tracker
(this module knows nothing of MLflow or Prefect).

Exact resume holds with the stock Trainer only if: the seed is set before the adapter is created,
`rng_state.pth` stays in checkpoints, `ignore_data_skip` stays off, and nothing else draws from the
data loader or the RNG in one run and not the other.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trainer.data import Example
from trainer.distributed import process_rank, world_size
from trainer.model import Runtime, attach_lora, load_adapter, load_base_model, load_tokenizer, pick_runtime, trainable_parameters
from trainer.settings import Settings
from trainer.tokens import ensure_chat_template, tokenize_examples

log = logging.getLogger("llm_trainer.training")
MetricsSink = Callable[[dict[str, float], int], None]

# What a checkpoint needs for an exact resume; the marker is written last (see hf_trainer). Plus the
# RNG state: `rng_state.pth` from one process, `rng_state_<rank>.pth` from each of several.
CHECKPOINT_FILES = (
    "trainer_state.json", "optimizer.pt", "scheduler.pt", "adapter_model.safetensors", "llm_trainer_checkpoint.json",
)


@dataclass
class TrainResult:
    output_dir: str
    adapter_dir: str
    global_step: int
    train_loss: float
    loss_history: list[float]
    runtime: dict[str, str]
    trainable_parameters: int
    total_parameters: int
    train_examples: int
    rows_too_long: int
    resumed_from: str | None
    seconds: float  # the whole call: loading, tokenizing, training, saving
    train_seconds: float = 0.0  # the training loop alone (Trainer.train)
    non_padding_tokens: int = 0  # tokens the loop trained on, padding excluded (all processes)
    padding_fraction: float = 0.0  # share of the batch positions that were padding
    checkpoints: list[str] = field(default_factory=list)


def is_complete_checkpoint(path: Path) -> bool:
    return (
        path.is_dir()
        and all((path / name).is_file() for name in CHECKPOINT_FILES)
        and any(path.glob("rng_state*.pth"))
    )


def resolve_batching(batching: str, runtime: Runtime) -> str:
    """`auto`: packed on CUDA, length-grouped padding on the CPU.

    On the CPU, SDPA runs a packed row as one (T x T) masked attention, so packing costs more
    attention work than it saves in padding; grouping rows of similar length keeps padding to a few
    per cent with per-row attention (benchmarks/throughput.py measures both: 1.25x). On CUDA,
    packed rows avoid padding altogether and let a flash-attention varlen kernel skip
    cross-example attention; that default is reasoned, not yet measured on a GPU.
    """
    if batching != "auto":
        return batching
    return "packed" if runtime.device.startswith("cuda") else "grouped"


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The newest checkpoint that has every file a resume needs; incomplete ones are skipped."""
    if not checkpoints_dir.is_dir():
        return None
    candidates = sorted(
        (p for p in checkpoints_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
        reverse=True,
    )
    for path in candidates:
        if is_complete_checkpoint(path):
            return path
        log.warning("Skipping incomplete checkpoint %s", path)
    return None


class _ListDataset:
    """A map-style dataset over tokenized examples (the Trainer needs __len__/__getitem__)."""

    def __init__(self, items):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        item = self.items[index]
        return {"input_ids": item.input_ids, "labels": item.labels}


def training_arguments(settings: Settings, checkpoints_dir: Path, runtime: Runtime, batching: str = "packed"):
    from transformers import TrainingArguments

    on_gpu = runtime.device.startswith("cuda")
    distributed: dict = {}
    if world_size() > 1:  # launched by torchrun (trainer.distributed); the Trainer sets up DDP itself
        distributed = {"ddp_backend": "nccl" if on_gpu else "gloo", "ddp_find_unused_parameters": False}
    return TrainingArguments(
        output_dir=str(checkpoints_dir),
        max_steps=settings.max_steps or -1,
        num_train_epochs=settings.num_epochs,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_ratio,  # a float < 1 is a ratio of the total steps in transformers 5
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        logging_steps=settings.logging_steps,
        save_strategy="steps",
        save_steps=settings.save_every_n_iterations,
        save_total_limit=settings.keep_last_n_checkpoints,
        seed=settings.random_seed,
        data_seed=settings.random_seed,
        bf16=on_gpu and runtime.compute_dtype == "bfloat16",
        fp16=on_gpu and runtime.compute_dtype == "float16",
        use_cpu=not on_gpu,
        gradient_checkpointing=on_gpu,
        gradient_checkpointing_kwargs={"use_reentrant": False} if on_gpu else None,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if batching == "grouped" else "random",
        **distributed,
    )


def _cast_trainable_to_fp32(model) -> None:
    """One dtype for the trainable weights: peft may create LoRA weights in the compute dtype and
    reload them as fp32 on resume, which makes a resumed run drift from an uninterrupted one."""
    import torch

    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()


def train(
    settings: Settings,
    base_model_dir: Path,
    train_examples: list[Example],
    output_dir: Path,
    resume_from: Path | None = None,
    warm_start_adapter: Path | None = None,
    metrics_sink: MetricsSink | None = None,
    show_progress: bool = True,
    eval_examples: list[Example] | None = None,
    checkpoint_meta: dict | None = None,
) -> TrainResult:
    """Train a LoRA adapter on `train_examples`; resume from `resume_from` or this run's latest checkpoint."""
    import torch
    from transformers.trainer_callback import PrinterCallback

    from trainer.hf_trainer import (
        STAGING, CrashForTesting, MetricsCallback, PeriodicEvalCallback, PipelineTrainer, ProgressCallback, build_collator,
    )

    started = time.perf_counter()
    main_process = process_rank() == 0  # under torchrun, rank 0 alone logs, reports and saves the adapter
    checkpoints_dir = output_dir / "checkpoints"
    # Leftovers of a save that was killed midway are never a checkpoint.
    if main_process:
        shutil.rmtree(checkpoints_dir / STAGING, ignore_errors=True)
    # A retried task (same output_dir) continues from its own latest checkpoint rather than from
    # the artifact it started with.
    own_checkpoint = latest_checkpoint(checkpoints_dir)
    resume = own_checkpoint or resume_from
    if resume is not None and not is_complete_checkpoint(resume):
        raise ValueError(
            f"trained_artifact: {resume} is not a complete checkpoint (needs {', '.join(CHECKPOINT_FILES)} and rng_state*.pth)"
        )
    if resume is not None:
        warn_if_world_size_changed(resume)

    runtime = pick_runtime(settings.quantization_bits)
    check_gpu_memory(settings, runtime)
    batching = resolve_batching(settings.batching, runtime)
    log.info("Training on %s; %s batches%s", runtime.describe(), BATCHING_WORDS[batching],
             f"; process {process_rank()} of {world_size()} (DDP)" if world_size() > 1 else "")
    tokenizer = load_tokenizer(base_model_dir, settings.trust_remote_code)
    if ensure_chat_template(tokenizer):
        log.info("The base tokenizer has no chat template; using the pipeline's default template")
    tokenized, too_long = tokenize_examples(tokenizer, train_examples, settings.max_seq_length, settings.train_on_prompt)
    if not tokenized:
        raise ValueError(f"max_seq_length: all {len(train_examples)} training rows are longer than {settings.max_seq_length} tokens")

    model = load_base_model(base_model_dir, settings.quantization_bits, runtime, settings.trust_remote_code,
                            settings.allow_pickle_weights)
    if warm_start_adapter is not None and resume is None:
        model = load_adapter(model, warm_start_adapter, trainable=True)
    else:
        targets = settings.lora_target_modules or list(settings.architecture.lora_target_modules)
        model = attach_lora(
            model,
            rank=settings.lora_rank,
            alpha=settings.lora_alpha,
            dropout=settings.lora_dropout,
            target_modules="all-linear" if targets == ["all-linear"] else targets,
            seed=settings.random_seed,
            gradient_checkpointing=runtime.device.startswith("cuda"),
        )
    _cast_trainable_to_fp32(model)
    trainable, total = trainable_parameters(model)
    log.info("LoRA: %s trainable of %s parameters (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)

    if not main_process:
        metrics_sink = None
    metrics = MetricsCallback(metrics_sink)
    callbacks = [metrics, CrashForTesting(output_dir)]
    if show_progress and main_process:
        callbacks.append(ProgressCallback())
    # Rank 0 alone scores the held-out rows (on the unwrapped model; the other ranks wait at the
    # next gradient all-reduce), so the eval metrics are logged once.
    if settings.eval_every_n_iterations and eval_examples and main_process:
        from trainer.evaluation import score_metrics

        callbacks.append(PeriodicEvalCallback(
            settings.eval_every_n_iterations,
            lambda m: score_metrics(m, tokenizer, eval_examples, settings.max_seq_length, settings.batch_size),
            metrics_sink,
        ))
    trainer = PipelineTrainer(
        model=model,
        args=training_arguments(settings, checkpoints_dir, runtime, batching),
        train_dataset=_ListDataset(tokenized),
        data_collator=build_collator(tokenizer, packed=batching == "packed"),
        callbacks=callbacks,
        settings_yaml=settings.to_yaml(),
        checkpoint_meta=checkpoint_meta,
    )
    trainer.remove_callback(PrinterCallback)  # our callbacks report instead of raw dicts
    if resume is not None:
        log.info("Resuming from checkpoint %s", resume)
    loop_started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    train_seconds = time.perf_counter() - loop_started
    non_padding_tokens, batch_positions = trainer.token_totals()
    if resume is not None:
        _cast_trainable_to_fp32(trainer.model)

    adapter_dir = output_dir / "adapter"
    if main_process:
        trainer.model.save_pretrained(adapter_dir, safe_serialization=True)
        tokenizer.save_pretrained(adapter_dir)
        (adapter_dir / "llm_trainer_settings.yaml").write_text(settings.to_yaml(), encoding="utf-8")
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return TrainResult(
        output_dir=str(output_dir),
        adapter_dir=str(adapter_dir),
        global_step=output.global_step,
        train_loss=float(output.training_loss),
        loss_history=metrics.losses,
        runtime={**runtime.__dict__, "batching": batching, "processes": str(world_size())},
        trainable_parameters=trainable,
        total_parameters=total,
        train_examples=len(tokenized),
        rows_too_long=too_long,
        resumed_from=str(resume) if resume is not None else None,
        seconds=time.perf_counter() - started,
        train_seconds=train_seconds,
        non_padding_tokens=non_padding_tokens,
        padding_fraction=1 - non_padding_tokens / batch_positions if batch_positions else 0.0,
        checkpoints=sorted(p.name for p in checkpoints_dir.glob("checkpoint-*")),
    )


BATCHING_WORDS = {
    "packed": "packed (padding-free)", "grouped": "length-grouped, padded", "padded": "padded (random order)",
}


def warn_if_world_size_changed(checkpoint: Path) -> None:
    """A checkpoint resumes exactly only with the process count that wrote it (data shards and
    per-process RNG states); with another count training continues, not bit for bit."""
    saved = len(list(checkpoint.glob("rng_state_*.pth"))) or 1
    if saved != world_size():
        log.warning("Checkpoint %s was written by %d process(es), resuming with %d: training continues, "
                    "but not exactly as the original run would have", checkpoint, saved, world_size())


def check_gpu_memory(settings: Settings, runtime: Runtime) -> None:
    """Before loading anything on CUDA: stop with advice when the estimate exceeds free memory."""
    if not runtime.device.startswith("cuda"):
        return
    import torch

    from trainer.memory import GIB, estimate_for_settings, fit_advice
    from trainer.settings import SettingsError

    free, _ = torch.cuda.mem_get_info()
    estimate = estimate_for_settings(settings)
    log.info("Memory preflight: estimated peak %.1f GiB, %.1f GiB free", estimate.total_gib, free / GIB)
    if estimate.total_gib * GIB > free:
        raise SettingsError(fit_advice(settings, estimate, free / GIB))


def read_checkpoint_step(path: Path) -> int:
    return int(json.loads((path / "trainer_state.json").read_text())["global_step"])
