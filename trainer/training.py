"""Training a LoRA adapter with the stock transformers `Trainer`.

The Trainer already does what we would otherwise hand-write badly: saving every N steps,
checkpoint rotation, and resuming with optimizer, scheduler, RNG state and data position. We add
the glue: settings saved in every checkpoint, resume from the latest valid checkpoint of the same
run (so a retried task continues instead of starting over), a progress bar with the loss, and a
metrics sink the caller wires to its tracker (this module knows nothing of MLflow or Prefect).

Exact resume holds with the stock Trainer only if: the seed is set before the adapter is created,
`rng_state.pth` stays in checkpoints, `ignore_data_skip` stays off, and nothing else draws from the
data loader or the RNG in one run and not the other.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trainer.data import Example
from trainer.model import Runtime, attach_lora, load_adapter, load_base_model, load_tokenizer, pick_runtime, trainable_parameters
from trainer.settings import Settings
from trainer.tokens import ensure_chat_template, tokenize_examples

log = logging.getLogger("llm_trainer.training")
MetricsSink = Callable[[dict[str, float], int], None]

CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "adapter_model.safetensors")


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
    seconds: float
    checkpoints: list[str] = field(default_factory=list)


def is_complete_checkpoint(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in CHECKPOINT_FILES)


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


def _callbacks(settings: Settings, metrics_sink: MetricsSink | None, show_progress: bool):
    from transformers import TrainerCallback

    class SaveSettings(TrainerCallback):
        """Every checkpoint carries the settings that produced it (nanoGPT does the same)."""

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                (folder / "llm_trainer_settings.yaml").write_text(settings.to_yaml(), encoding="utf-8")

    class Metrics(TrainerCallback):
        def __init__(self):
            self.losses: list[float] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and k in ("loss", "learning_rate", "grad_norm", "epoch")}
            if "loss" in values:
                self.losses.append(values["loss"])
                values["train_loss"] = values.pop("loss")
            if metrics_sink is not None and values:
                metrics_sink(values, state.global_step)

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, loss="-")

        def on_step_end(self, args, state, control, **kwargs):
            self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.progress.update(self.task, loss=f"{logs['loss']:.4f}")

        def on_train_end(self, args, state, control, **kwargs):
            self.progress.stop()

    metrics = Metrics()
    callbacks = [SaveSettings(), metrics]
    if show_progress:
        callbacks.append(Progress())
    return callbacks, metrics


def training_arguments(settings: Settings, checkpoints_dir: Path, runtime: Runtime):
    from transformers import TrainingArguments

    on_gpu = runtime.device.startswith("cuda")
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
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )


def train(
    settings: Settings,
    base_model_dir: Path,
    train_examples: list[Example],
    output_dir: Path,
    resume_from: Path | None = None,
    warm_start_adapter: Path | None = None,
    metrics_sink: MetricsSink | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train a LoRA adapter on `train_examples`; resume from `resume_from` or this run's latest checkpoint."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer
    from transformers.trainer_callback import PrinterCallback

    started = time.perf_counter()
    checkpoints_dir = output_dir / "checkpoints"
    # A retried task (same output_dir) continues from its own latest checkpoint rather than from
    # the artifact it started with.
    own_checkpoint = latest_checkpoint(checkpoints_dir)
    resume = own_checkpoint or resume_from
    if resume is not None and not is_complete_checkpoint(resume):
        raise ValueError(f"trained_artifact: {resume} is not a complete checkpoint (needs {', '.join(CHECKPOINT_FILES)})")

    runtime = pick_runtime(settings.quantization_bits)
    log.info("Training on %s", runtime.describe())
    tokenizer = load_tokenizer(base_model_dir, settings.trust_remote_code)
    if ensure_chat_template(tokenizer):
        log.info("The base tokenizer has no chat template; using the pipeline's default template")
    tokenized, too_long = tokenize_examples(tokenizer, train_examples, settings.max_seq_length)
    if not tokenized:
        raise ValueError(f"max_seq_length: all {len(train_examples)} training rows are longer than {settings.max_seq_length} tokens")

    model = load_base_model(base_model_dir, settings.quantization_bits, runtime, settings.trust_remote_code)
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
    trainable, total = trainable_parameters(model)
    log.info("LoRA: %s trainable of %s parameters (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)

    callbacks, metrics = _callbacks(settings, metrics_sink, show_progress)
    trainer = Trainer(
        model=model,
        args=training_arguments(settings, checkpoints_dir, runtime),
        train_dataset=_ListDataset(tokenized),
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt"),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # our Metrics/Progress callbacks report instead of raw dicts
    if resume is not None:
        log.info("Resuming from checkpoint %s", resume)
    output = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)

    adapter_dir = output_dir / "adapter"
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
        runtime=runtime.__dict__,
        trainable_parameters=trainable,
        total_parameters=total,
        train_examples=len(tokenized),
        rows_too_long=too_long,
        resumed_from=str(resume) if resume is not None else None,
        seconds=time.perf_counter() - started,
        checkpoints=sorted(p.name for p in checkpoints_dir.glob("checkpoint-*")),
    )


def read_checkpoint_step(path: Path) -> int:
    return int(json.loads((path / "trainer_state.json").read_text())["global_step"])
