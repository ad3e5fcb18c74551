"""Peak GPU memory of a QLoRA / LoRA training step, before anything is loaded.

The estimate models what the code does on CUDA, term by term (bytes; `llm-trainer estimate --json`
names each one, and tests/unit/test_memory.py ties each to the code path it models):

- **base_weights**: quantized linear layers at `bits` per weight plus their constants (NF4 with
  double quantization: 0.127 bits per weight, QLoRA paper; LLM.int8: one fp32 scale per row; HQQ
  2-bit, group 64: 0.5 bits), embedding and output head in the compute dtype (`prepare_for_training`
  keeps frozen weights there; peft's `prepare_model_for_kbit_training` would upcast them to fp32).
- **adapter_optimizer**: LoRA weights in fp32, their gradient and AdamW's two moments: 16 bytes each.
- **workspace**: cuBLAS workspaces and kernels' scratch taken through the caching allocator.
- **layer_inputs**: with gradient checkpointing, each layer's input (L x T x h, compute dtype) waits
  for the backward; 0 with activation offloading (it waits in pinned CPU memory: `offloaded_cpu`).
- **layer_activations**: what one decoder layer saves for its backward, recomputed during the
  backward (all L layers' without checkpointing). Bytes per token, measured on the pipeline's own
  4-bit + LoRA layers under bf16 autocast with saved-tensor hooks: 24 h + 4 kv + 8 ffn + 4 heads + 8,
  + 2 r per LoRA module, + 4 x (in_features) per LoRA module when LoRA dropout is on (the dropped-out
  copy and its mask). LLaMA's layer; other families are approximated by it.
- **backward_working**: gradients alive inside one layer's backward (two ffn-wide and two h-wide
  tensors in the compute dtype). Not measured: the GPU benchmark checks the sum.
- **dequantized_weight**: the largest frozen weight dequantized for its matmul.
- **attention**: per forward, the attention mask of packed or padded rows for SDPA (a bool mask and
  the kernel's additive copy) and the rotary tables.
- **loss**: the loss's own buffers (`loss_bytes`): full logits for transformers' loss (bf16 logits,
  fp32 upcast, fp32 gradient: 10 bytes x tokens x vocabulary), or one chunk for ours.

peak = weights + adapter + workspace + layer_inputs + attention + max(loss, layer_activations +
backward_working + dequantized_weight): the loss runs at the end of the forward, a layer's
recomputation in the backward, and neither's buffers outlive its phase.
`required` adds what `torch.cuda.mem_get_info` free memory must also hold: the allocator's
fragmentation (5 %) and, for a whole card, the CUDA context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trainer.config.catalog import ModelShape
from trainer.model.loss import chunk_rows

GIB = 2**30
QUANT_BITS_PER_WEIGHT = {2: 2 + 0.5, 4: 4 + 0.127, 8: 8 + 0.05, None: 16}
WORKSPACE_BYTES = 64 * 2**20
FRAGMENTATION = 0.05
CUDA_CONTEXT_GIB = 0.5
FULL_LOGIT_BYTES = 2 + 4 + 4  # bf16 logits, their fp32 upcast, the fp32 gradient
COMMON_GPUS_GB = (12, 16, 24, 40, 80)
LORA_SHAPE_KEYS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@dataclass(frozen=True)
class Recipe:
    """How a run uses memory: the settings plus the implementation choices that matter."""

    bits: int | None
    lora_rank: int
    lora_targets: tuple[str, ...]
    batch_size: int
    seq_length: int
    lora_dropout: float = 0.0
    gradient_checkpointing: bool = True
    activation_offloading: bool = False
    loss: str = "chunked"  # "full" (transformers), "chunked" (PyTorch), "liger", "torchtune" (8 chunks)
    packed: bool = True
    logit_softcap: bool = False
    compute_bytes: int = 2
    upcast_frozen_fp32: bool = False  # peft's prepare_model_for_kbit_training does this

    @property
    def tokens(self) -> int:
        return self.batch_size * self.seq_length


@dataclass
class MemoryEstimate:
    terms: dict[str, float]  # bytes, in the order the docstring lists them
    offloaded_cpu: float = 0.0
    recipe: Recipe | None = field(default=None, repr=False)

    @property
    def total_gib(self) -> float:
        t = self.terms
        phase = max(t["loss"], t["layer_activations"] + t["backward_working"] + t["dequantized_weight"])
        fixed = ("base_weights", "adapter_optimizer", "workspace", "layer_inputs", "attention")
        return (sum(t[k] for k in fixed) + phase) / GIB

    @property
    def required_gib(self) -> float:
        """Free GPU memory the step needs: the peak plus the caching allocator's fragmentation."""
        return self.total_gib * (1 + FRAGMENTATION)

    def __getattr__(self, name: str) -> float:
        if name.endswith("_gib") and name[:-4] in self.__dict__.get("terms", {}):
            return self.terms[name[:-4]] / GIB
        raise AttributeError(name)

    def as_dict(self) -> dict[str, float]:
        out = {f"{k}_gib": round(v / GIB, 3) for k, v in self.terms.items()}
        out["offloaded_cpu_gib"] = round(self.offloaded_cpu / GIB, 3)
        return {**out, "total_gib": round(self.total_gib, 3), "required_gib": round(self.required_gib, 3)}


def base_weight_bytes(shape: ModelShape, bits: int | None, upcast_frozen_fp32: bool = False) -> float:
    frozen_dtype_bytes = 4 if upcast_frozen_fp32 else 2
    return shape.linear_params * QUANT_BITS_PER_WEIGHT[bits] / 8 + shape.embedding_params * frozen_dtype_bytes


def _lora_inputs(shape: ModelShape, targets: tuple[str, ...]) -> list[int]:
    """in_features of each adapted layer of one decoder layer."""
    names = LORA_SHAPE_KEYS if "all-linear" in targets else set(targets)
    wide = {"down_proj": shape.intermediate, "dense_4h_to_h": shape.intermediate}
    return [wide.get(n, shape.hidden) for n in sorted(names)]


def layer_bytes_per_token(shape: ModelShape, rank: int, targets: tuple[str, ...], dropout: float) -> float:
    """Bytes one decoder layer saves for its backward per token (bf16 compute, 4-bit LoRA layers)."""
    h, kv, ffn = shape.hidden, shape.kv_dim, shape.intermediate
    inputs = _lora_inputs(shape, targets)
    saved = 24 * h + 4 * kv + 8 * ffn + 4 * shape.heads + 8 + 2 * rank * len(inputs)
    if dropout > 0:
        saved += 4 * sum(inputs)
    return saved


def chunked_loss_bytes(rows: int, vocab: int, hidden: int, chunk: int, weight_bytes: int, softcap: bool) -> float:
    """trainer.model.chunked_ce: one fp32 [chunk, V] buffer, its 16-bit copy (matmul output, then
    the gradient cast back) when the weight is 16-bit, one more fp32 buffer for a soft cap; the
    gathered rows and their fp32 gradient."""
    c = min(chunk, rows)
    per_entry = 4 + (weight_bytes if weight_bytes < 4 else 0) + (4 if softcap else 0)
    return c * vocab * per_entry + rows * hidden * (weight_bytes + 4)


def liger_loss_bytes(rows: int, vocab: int, hidden: int, weight_bytes: int) -> float:
    """Liger's fused linear cross-entropy (its source, v0.8): chunks of 2^ceil(log2(rows / ceil(V / h)))
    rows of logits in the input dtype, the gradient of its input, per-row loss and accuracy (fp32)."""
    chunk = min(rows, 2 ** math.ceil(math.log2(max(1, math.ceil(rows / math.ceil(vocab / hidden))))))
    return chunk * vocab * weight_bytes + rows * hidden * 2 * weight_bytes + rows * 8


def loss_bytes(shape: ModelShape, recipe: Recipe) -> float:
    tokens, vocab, h, cb = recipe.tokens, shape.vocab, shape.hidden, recipe.compute_bytes
    if recipe.loss == "full":
        return tokens * vocab * FULL_LOGIT_BYTES
    if recipe.loss == "liger":
        return liger_loss_bytes(tokens, vocab, h, cb)
    if recipe.loss == "torchtune":  # all 8 chunks' bf16 logits kept; one chunk upcast, and its gradient
        return tokens * vocab * cb + tokens // 8 * vocab * 8
    return chunked_loss_bytes(tokens, vocab, h, chunk_rows(vocab), cb, recipe.logit_softcap)


def estimate(shape: ModelShape, recipe: Recipe) -> MemoryEstimate:
    h, ffn, layers, cb, tokens = shape.hidden, shape.intermediate, shape.layers, recipe.compute_bytes, recipe.tokens
    one_layer = tokens * layer_bytes_per_token(shape, recipe.lora_rank, recipe.lora_targets, recipe.lora_dropout)
    inputs = layers * tokens * h * cb if recipe.gradient_checkpointing else 0
    offloaded = inputs if recipe.activation_offloading else 0
    row = tokens if recipe.packed else recipe.seq_length
    terms = {
        "base_weights": base_weight_bytes(shape, recipe.bits, recipe.upcast_frozen_fp32),
        "adapter_optimizer": shape.lora_params(recipe.lora_rank, set(recipe.lora_targets)) * 16,
        "workspace": WORKSPACE_BYTES,
        # Offloaded, one layer's input is back on the GPU during its backward.
        "layer_inputs": tokens * h * cb if offloaded else inputs,
        "layer_activations": one_layer if recipe.gradient_checkpointing else layers * one_layer,
        "backward_working": tokens * (2 * ffn + 2 * h) * cb,
        "dequantized_weight": h * ffn * cb if recipe.bits is not None else 0,
        "attention": tokens * row * (1 + cb) + 2 * tokens * (h // shape.heads) * cb,
        "loss": loss_bytes(shape, recipe),
    }
    return MemoryEstimate(terms, offloaded_cpu=offloaded, recipe=recipe)


def offloading_on(setting: bool, gradient_checkpointing: bool) -> bool:
    """Activation offloading runs when it is on and layer inputs are checkpointed (CUDA)."""
    return setting and gradient_checkpointing


def loss_path(chunked_loss: bool, device: str) -> str:
    """The loss `trainer.model.loss` runs on `device`: Liger on CUDA when the gpu extra is installed."""
    from trainer.model.loss import fused_kernel_installed

    if not chunked_loss:
        return "full"
    return "liger" if device.startswith("cuda") and fused_kernel_installed() else "chunked"


def recipe_for(settings, device: str = "cuda") -> Recipe:
    """What this pipeline runs for `settings` on `device` (trainer.train.arguments builds the same)."""
    on_cuda = device.startswith("cuda")
    targets = settings.lora_target_modules or list(settings.architecture.lora_target_modules)
    return Recipe(
        bits=settings.quantization_bits,
        lora_rank=settings.lora_rank,
        lora_targets=tuple(targets),
        batch_size=settings.batch_size,
        seq_length=settings.max_seq_length,
        lora_dropout=settings.lora_dropout,
        gradient_checkpointing=on_cuda,
        activation_offloading=offloading_on(settings.activation_offloading, on_cuda),
        loss=loss_path(settings.chunked_loss, device),
        # batching "auto" is packed on CUDA (trainer.train.arguments.resolve_batching)
        packed=settings.batching == "packed" or (settings.batching == "auto" and on_cuda),
        logit_softcap=settings.architecture.family == "gemma2",
    )


def estimate_for_settings(settings, architecture_key: str | None = None) -> MemoryEstimate:
    from trainer.config.catalog import ARCHITECTURES

    arch = ARCHITECTURES[architecture_key or settings.base_model_architecture]
    update = {"base_model_architecture": arch.key} if architecture_key else {}
    chosen = settings.model_copy(update=update) if update else settings
    return estimate(arch.shape, recipe_for(chosen))


def smallest_gpu(estimate_: MemoryEstimate) -> int | None:
    """The smallest common GPU (GB) whose memory, less the CUDA context, holds the step; None if none."""
    for size in COMMON_GPUS_GB:
        if estimate_.required_gib + CUDA_CONTEXT_GIB <= size:
            return size
    return None


def _candidates(settings):
    """Setting changes that lower the peak, one kind at a time, mildest first: (update, words)."""
    if not settings.chunked_loss:
        yield {"chunked_loss": True}, "chunked_loss=true"
    if not settings.activation_offloading:
        yield {"activation_offloading": True}, "activation_offloading=true"
    if settings.quantization_bits in (None, 8):
        yield {"quantization_rank": 4}, "quantization_rank=4"
    batch, accumulation = settings.batch_size, settings.gradient_accumulation_steps
    while batch > 1:
        batch, accumulation = batch // 2, accumulation * 2
        words = f"batch_size={batch} with gradient_accumulation_steps={accumulation} (the same effective batch)"
        yield {"batch_size": batch, "gradient_accumulation_steps": accumulation}, words
    length = settings.max_seq_length
    while length > 256:
        length //= 2
        yield {"max_seq_length": length}, f"max_seq_length={length} (longer rows are left out)"
    if settings.quantization_bits == 4:
        yield {"quantization_rank": 2}, "quantization_rank=2 (at a clear quality cost)"


def changes_to_fit(settings, free_gib: float, architecture_key: str | None = None) -> list[str]:
    """For each kind of change, the mildest one that brings the step within `free_gib`."""
    found, kinds = [], set()
    for update, words in _candidates(settings):
        kind = next(iter(update))
        if kind in kinds:
            continue
        if estimate_for_settings(settings.model_copy(update=update), architecture_key).required_gib <= free_gib:
            found.append(words)
            kinds.add(kind)
    return found


def fit_advice(settings, estimate_: MemoryEstimate, free_gib: float, architecture_key: str | None = None) -> str:
    """One line: the peak does not fit `free_gib`, and which settings to change."""
    tips = changes_to_fit(settings, free_gib, architecture_key)
    gpu = smallest_gpu(estimate_)
    todo = f"try {'; or '.join(tips)}" if tips else "no single setting change fits; combine them"
    where = f", or a GPU with {gpu} GB" if gpu else ""
    return (
        f"running_on: estimated peak {estimate_.total_gib:.1f} GiB (needs {estimate_.required_gib:.1f} GiB free: "
        f"weights {estimate_.base_weights_gib:.1f}, loss {estimate_.loss_gib:.1f}, layer activations "
        f"{estimate_.layer_activations_gib:.1f}) exceeds the {free_gib:.1f} GiB free on this GPU; {todo}{where}"
    )
