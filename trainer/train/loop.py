"""Training a LoRA adapter with the stock transformers `Trainer`.

The Trainer already does what we would otherwise hand-write badly: saving every N steps,
checkpoint rotation, and resuming with optimizer, scheduler, RNG state and data position. We add
the glue: atomic checkpoints that carry the settings (see `hf_trainer`), resume from the latest
complete checkpoint of the same run (so a retried task continues instead of starting over),
packed batches, a progress bar with the loss, and a metrics sink the caller wires to its tracker
(this module knows nothing of MLflow or Prefect). `train(job)` reads top to bottom as its steps.

Exact resume holds with the stock Trainer only if: the seed is set before the adapter is created,
`rng_state.pth` stays in checkpoints, `ignore_data_skip` stays off, and nothing else draws from the
data loader or the RNG in one run and not the other.
"""

from __future__ import annotations

import errno
import logging
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from trainer.config.settings import Settings
from trainer.config.state import state_dir
from trainer.errors import NonFiniteError, OutOfSpaceError, SettingsError
from trainer.layout import ADAPTER_DIR, CHECKPOINT_STAGING, CHECKPOINTS_DIR, PREPARED_DIR, SETTINGS_FILE
from trainer.model.loading import attach_lora, load_adapter, load_base_model, load_tokenizer, trainable_parameters
from trainer.model.memory import GIB, estimate_for_settings, fit_advice
from trainer.model.runtime import Runtime, pick_runtime, process_rank, world_size
from trainer.model.tokens import ensure_chat_template
from trainer.train.arguments import (
    BATCHING_WORDS,
    build_collator,
    memory_options,
    resolve_batching,
    training_arguments,
)
from trainer.train.checkpoints import latest_checkpoint, verify_checkpoint, warn_if_world_size_changed
from trainer.train.job import TrainJob, TrainResult
from trainer.train.prepared import prepare

log = logging.getLogger("llm_trainer.training")

MetricsSink = Callable[[dict[str, float], int], None]


def train(job: TrainJob, metrics_sink: MetricsSink | None = None, show_progress: bool = True) -> TrainResult:
    """Train a LoRA adapter on the job's rows; resume from `job.resume_from` or this run's latest checkpoint."""
    import torch

    started = time.perf_counter()
    settings = job.settings
    checkpoints_dir = job.output_dir / CHECKPOINTS_DIR
    resume = _checkpoint_to_resume(job, checkpoints_dir)
    runtime = pick_runtime(settings.quantization_bits)
    check_gpu_memory(settings, runtime)
    batching = resolve_batching(settings.batching, runtime)
    log.info(
        "Training on %s; %s batches%s",
        runtime.describe(),
        BATCHING_WORDS[batching],
        f"; process {process_rank()} of {world_size()} (DDP)" if world_size() > 1 else "",
    )
    tokenizer = load_tokenizer(job.base_model_dir, settings.trust_remote_code)
    if ensure_chat_template(tokenizer):
        log.info("The base tokenizer has no chat template; using the pipeline's default template")
    prepared = prepare(
        job.train_examples,
        tokenizer,
        job.base_model_dir,
        settings.max_seq_length,
        settings.train_on_prompt,
        state_dir() / PREPARED_DIR,
        settings.tokenize_processes,
    )
    tokenized, too_long = prepared.rows, prepared.too_long
    if not len(tokenized):
        raise SettingsError(
            f"max_seq_length: all {len(job.train_examples)} training rows are longer than {settings.max_seq_length} "
            "tokens"
        )
    model = _trainable_model(job, runtime, fresh_adapter=job.warm_start_adapter is None or resume is not None)
    trainable, total = trainable_parameters(model)
    log.info("LoRA: %s trainable of %s parameters (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)

    trainer, metrics = _build_trainer(job, model, tokenizer, tokenized, runtime, batching, metrics_sink, show_progress)
    if resume is not None:
        log.info("Resuming from checkpoint %s", resume)
    loop_started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    train_seconds = time.perf_counter() - loop_started
    non_padding_tokens, batch_positions = trainer.token_totals()
    if process_rank() == 0:
        _remove_empty_staging(checkpoints_dir)
    check_finite_loss(float(output.training_loss), metrics.losses, settings.logging_steps)
    if resume is not None:
        _cast_trainable_to_fp32(trainer.model)

    adapter_dir = job.output_dir / ADAPTER_DIR
    if process_rank() == 0:  # under torchrun, rank 0 alone saves the adapter
        _save_adapter(trainer.model, tokenizer, settings, adapter_dir)
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return TrainResult(
        output_dir=str(job.output_dir),
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
        rows_prepared="reused" if prepared.reused else "prepared",
        prepare_seconds=prepared.seconds,
    )


def _checkpoint_to_resume(job: TrainJob, checkpoints_dir: Path) -> Path | None:
    """This run's own latest checkpoint (a retried task continues rather than starting over from the
    artifact it started with), else the job's `resume_from`, verified against its completion marker
    (CheckpointError naming a truncated or changed file); leftovers of a killed save removed."""
    if process_rank() == 0:  # rank 0 alone clears what a killed save left behind
        shutil.rmtree(checkpoints_dir / CHECKPOINT_STAGING, ignore_errors=True)
    resume = latest_checkpoint(checkpoints_dir) or job.resume_from
    if resume is not None:
        verify_checkpoint(resume)
        warn_if_world_size_changed(resume)
    return resume


def _remove_empty_staging(checkpoints_dir: Path) -> None:
    """The staging folder is empty once every save was renamed into place: leave no trace of it."""
    staging = checkpoints_dir / CHECKPOINT_STAGING
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()


def check_finite_loss(training_loss: float, losses: list[float], logging_steps: int) -> None:
    """NonFiniteError when training diverged (a NaN or infinite loss): such an adapter must not go on
    to be evaluated, registered or promoted. The Trainer's nan/inf log filter is off (see
    train/arguments.py), so the logged losses are the real ones."""
    bad = [i for i, loss in enumerate(losses) if not math.isfinite(loss)]
    if not bad and math.isfinite(training_loss):
        return
    where = f"from iteration {(bad[0] + 1) * logging_steps}" if bad else "on average"
    raise NonFiniteError(
        f"training diverged: the training loss is {losses[bad[0]] if bad else training_loss} {where}; the adapter is "
        "not saved or registered. Lower learning_rate (or lora_alpha), or keep max_grad_norm small"
    )


def _save_adapter(model, tokenizer, settings: Settings, adapter_dir: Path) -> None:
    """The adapter, its tokenizer and the (redacted) settings; a full disk is one line naming the folder."""
    try:
        model.save_pretrained(adapter_dir, safe_serialization=True)
        tokenizer.save_pretrained(adapter_dir)
        (adapter_dir / SETTINGS_FILE).write_text(settings.to_yaml(), encoding="utf-8")
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise OutOfSpaceError(
            f"output_dir: no space left on the device of {adapter_dir} while saving the adapter "
            f"({shutil.disk_usage(adapter_dir.parent).free:,} bytes free); free space or set output_dir elsewhere"
        ) from None


def _trainable_model(job: TrainJob, runtime: Runtime, fresh_adapter: bool):
    """The quantized base with a fresh LoRA adapter (or the warm-start adapter), trainable weights in fp32."""
    settings = job.settings
    model = load_base_model(
        job.base_model_dir,
        settings.quantization_bits,
        runtime,
        settings.trust_remote_code,
        settings.allow_pickle_weights,
    )
    if not fresh_adapter:
        model = load_adapter(model, job.warm_start_adapter, trainable=True)
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
    return model


def _build_trainer(
    job: TrainJob,
    model,
    tokenizer,
    tokenized,
    runtime: Runtime,
    batching: str,
    metrics_sink: MetricsSink | None,
    show_progress: bool,
):
    """Our Trainer subclass with its callbacks: metrics (rank 0 only), progress, periodic eval."""
    from transformers.trainer_callback import PrinterCallback

    from trainer.evaluate.scoring import score_metrics
    from trainer.train.callbacks import MetricsCallback, PeriodicEvalCallback, ProgressCallback
    from trainer.train.hf_trainer import PipelineTrainer

    settings = job.settings
    main_process = process_rank() == 0
    metrics = MetricsCallback(metrics_sink if main_process else None)
    callbacks = [metrics]
    if show_progress and main_process:
        callbacks.append(ProgressCallback())
    # Rank 0 alone scores the held-out rows (on the unwrapped model; the other ranks wait at the
    # next gradient all-reduce), so the eval metrics are logged once.
    if settings.eval_every_n_iterations and job.eval_examples and main_process:
        callbacks.append(
            PeriodicEvalCallback(
                settings.eval_every_n_iterations,
                lambda m: score_metrics(
                    m, tokenizer, job.eval_examples, settings.max_seq_length, settings.batch_size, settings.chunked_loss
                ),
                metrics.sink,
            )
        )
    trainer = PipelineTrainer(
        model=model,
        args=training_arguments(settings, job.output_dir / CHECKPOINTS_DIR, runtime, batching),
        train_dataset=tokenized,
        data_collator=build_collator(tokenizer, packed=batching == "packed"),
        callbacks=callbacks,
        settings_yaml=settings.to_yaml(),
        checkpoint_meta=job.checkpoint_meta,
        **memory_options(settings, runtime),
    )
    trainer.remove_callback(PrinterCallback)  # our callbacks report instead of raw dicts
    return trainer, metrics


def _cast_trainable_to_fp32(model) -> None:
    """One dtype for the trainable weights: peft may create LoRA weights in the compute dtype and
    reload them as fp32 on resume, which makes a resumed run drift from an uninterrupted one."""
    import torch

    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()


def check_gpu_memory(settings: Settings, runtime: Runtime) -> None:
    """Before loading anything on CUDA: stop with advice when the estimate exceeds free memory."""
    if not runtime.device.startswith("cuda"):
        return
    import torch

    free, _ = torch.cuda.mem_get_info()
    estimate = estimate_for_settings(settings)
    log.info("Memory preflight: estimated peak %.1f GiB, %.1f GiB free", estimate.total_gib, free / GIB)
    if estimate.required_gib * GIB > free:
        raise SettingsError(fit_advice(settings, estimate, free / GIB))
