"""The training section of the settings: schedule, LoRA, batching, data-parallel processes, and
how training keeps its memory down (the loss without full-vocabulary logits, activation offloading).

A section of `trainer.config.settings.Settings` like those in `trainer.config.sections` (its own
module for room: a module stays under 400 lines).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from trainer.config.sections import STRICT


class TrainingSettings(BaseModel):
    """What training needs beyond the guide: schedule, LoRA, batching, data-parallel processes."""

    model_config = STRICT

    max_steps: int | None = Field(None, ge=1, description="Iterations to train; wins over num_epochs when set.")
    num_epochs: float = Field(1.0, gt=0, description="Passes over the training split when max_steps is not set.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Batches accumulated per iteration (effective batch = batch_size x this)."
    )
    warmup_ratio: float = Field(
        0.05, ge=0, lt=1, description="Fraction of iterations the learning rate warms up linearly."
    )
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule after warm-up."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the LoRA weights.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    lora_rank: int = Field(16, ge=1, le=1024, description="LoRA adapter rank: higher increases capacity and memory.")
    lora_alpha: int = Field(
        32,
        ge=1,
        description="LoRA scaling (alpha / rank multiplies the update); 2x rank is a common choice.",
    )
    lora_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Dropout on the LoRA input. 0 (torchtune's and Unsloth's default): measured on the demo, 0.05 "
        "took 1.19x the CPU time and gave a worse held-out loss; on a GPU it keeps a dropped-out copy of "
        "each adapted layer's input (+0.6 GiB at LLaMA 3 8B batch 2 x 2048). See docs/performance.md.",
    )
    lora_target_modules: list[str] | None = Field(
        None,
        description="Modules to adapt; empty = the architecture's default from the catalog ('all-linear' also works).",
    )
    batching: Literal["auto", "packed", "grouped", "padded"] = Field(
        "auto",
        description="How rows become batches. 'packed': each batch flattened into one padding-free sequence, "
        "position ids restarting per example (no token attends across examples). 'grouped': rows of similar "
        "length batched together (randomised groups of min(rows // (4 x batch), 50) batches), padded per batch. "
        "'padded': random order, per-batch padding (the common recipe). 'auto': packed on CUDA, grouped on the "
        "CPU (faster there: the CPU attention runs a packed row as one masked square).",
    )
    num_processes: int = Field(
        1,
        ge=1,
        le=64,
        description="Data-parallel training processes per node (one per GPU; on the CPU, gloo processes). Above 1 "
        "the train task launches torchrun and the Trainer's own DDP; batch_size is per process, so the "
        "effective batch is batch_size x gradient_accumulation_steps x num_processes x num_nodes.",
    )
    num_nodes: int = Field(
        1,
        ge=1,
        le=1024,
        description="Machines taking part in data-parallel training. Above 1, the flow's node is node 0 and each "
        "other node runs the `llm-trainer join` command it prints; needs rdzv_endpoint, and the run outputs "
        "(LLM_TRAINER_HOME or output_dir) on a filesystem every node mounts.",
    )
    rdzv_endpoint: str | None = Field(
        None,
        description="host:port on node 0 where the nodes of a multi-node training meet (torchrun rendezvous); "
        "empty: a free local port (single node).",
    )
    train_on_prompt: bool = Field(
        False, description="Also train on prompt tokens; by default the loss covers the answers only."
    )
    eval_every_n_iterations: int | None = Field(
        None,
        ge=1,
        description="Also score the held-out rows every N iterations during training (empty: only at the end).",
    )

    chunked_loss: bool = Field(
        True,
        description="Compute the loss from the final hidden states in chunks, never holding the full-vocabulary "
        "logits (Liger Kernel's fused kernel on CUDA with the `gpu` extra, plain PyTorch elsewhere): the same loss and "
        "gradients, ~4.6 GiB less at LLaMA 3 8B batch 2 x 2048. Off: transformers' stock loss.",
    )
    activation_offloading: bool = Field(
        True,
        description="On CUDA (where gradient checkpointing is on), keep each layer's checkpointed input in pinned CPU "
        "memory until the backward needs it: 1 GiB less at LLaMA 3 8B batch 2 x 2048, at the cost of host-device "
        "copies. No effect on the CPU.",
    )

    @field_validator("rdzv_endpoint")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._\-\[\]:]+:\d{1,5}", value):
            raise ValueError("expected host:port of node 0, e.g. 10.0.0.5:29500")
        return value
