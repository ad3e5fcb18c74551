"""How settings become the Trainer's arguments, batches and collator."""

from __future__ import annotations

from pathlib import Path

from trainer.config.settings import Settings
from trainer.model.memory import recipe_for
from trainer.model.runtime import Runtime, world_size
from trainer.model.tokens import IGNORE_INDEX


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


BATCHING_WORDS = {
    "packed": "packed (padding-free)",
    "grouped": "length-grouped, padded",
    "padded": "padded (random order)",
}


def memory_options(settings: Settings, runtime: Runtime) -> dict[str, bool]:
    """What the Trainer subclass does to keep memory down, from the recipe the memory estimate
    models (trainer.model.memory.recipe_for), so the estimate and the run cannot disagree."""
    recipe = recipe_for(settings, runtime.device)
    return {"chunked_loss": recipe.loss != "full", "offload_activations": recipe.activation_offloading}


def training_arguments(settings: Settings, checkpoints_dir: Path, runtime: Runtime, batching: str = "packed"):
    from transformers import TrainingArguments

    on_gpu = runtime.device.startswith("cuda")
    checkpointing = recipe_for(settings, runtime.device).gradient_checkpointing
    distributed: dict = {}
    if world_size() > 1:  # launched by torchrun (trainer.train.distributed); the Trainer sets up DDP itself
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
        # The default filter logs a NaN/inf step as the window's mean (shown as loss 0.0): a diverged
        # run would look healthy. Off, the real loss reaches the logs and check_finite_loss.
        logging_nan_inf_filter=False,
        save_strategy="steps",
        save_steps=settings.save_every_n_iterations,
        save_total_limit=settings.keep_last_n_checkpoints,
        seed=settings.random_seed,
        data_seed=settings.random_seed,
        bf16=on_gpu and runtime.compute_dtype == "bfloat16",
        fp16=on_gpu and runtime.compute_dtype == "float16",
        use_cpu=not on_gpu,
        gradient_checkpointing=checkpointing,
        # Non-reentrant: each layer's input is saved through the autograd hooks activation offloading uses.
        gradient_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if batching == "grouped" else "random",
        **distributed,
    )


def build_collator(tokenizer, packed: bool):
    """Flattened (padding-free) batches with position ids restarting per example, or padding."""
    if packed:
        from transformers import DataCollatorWithFlattening

        # The first label of each example becomes -100, so no token learns across a boundary;
        # the attention boundaries come from the restarting position ids.
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX)
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
