"""Peak GPU memory estimate for a QLoRA / LoRA run, before anything is loaded.

Four parts, in bytes:
- **base weights**: quantized linear layers at `bits` per weight plus their quantization constants
  (NF4 with double quantization: 0.127 bits per weight, QLoRA paper; LLM.int8: one fp32 scale per
  row; HQQ 2-bit, group 64: an fp16 scale and zero per group = 0.5 bits per weight), and the
  embedding / output head in the compute dtype (2 bytes), or fp32 when a recipe upcasts them.
- **adapter + optimizer**: LoRA weights in fp32 with their gradient and two AdamW moments: 16 bytes
  per LoRA parameter.
- **activations**: tokens per step T = batch x sequence length. With activation checkpointing each
  layer keeps its bf16 input (L x T x h x 2) and one layer is recomputed at a time
  (T x (16h + 4 kv + 8 ffn) bytes: projections, attention output, MLP intermediates, fp32 norms;
  memory-efficient attention, no T^2 term), plus the largest dequantized weight. The logits are
  the big one for large vocabularies: the transformers path keeps bf16 logits, their fp32 upcast
  and its gradient (10 bytes per token per vocabulary entry); a chunked loss upcasts one chunk at a
  time.
- **overhead**: a fixed 0.25 GiB for the CUDA workspace and kernels' buffers (not calibrated).

Calibration against published figures (tests/unit/test_memory.py): the QLoRA paper's LLaMA 7B
4-bit base (5,048 MB, with peft's fp32 upcast of embeddings and head), and torchtune's LLaMA 3.1
8B QLoRA, batch 2 x 2048 packed, 7.4 GiB peak (bf16 embeddings, chunked loss, activation
checkpointing and offloading). Both within 15 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

GIB = 2**30
QUANT_BITS_PER_WEIGHT = {2: 2 + 0.5, 4: 4 + 0.127, 8: 8 + 0.05, None: 16}
OVERHEAD_BYTES = 0.25 * GIB
LOGIT_BYTES_FULL = 2 + 4 + 4  # bf16 logits, fp32 upcast, fp32 gradient


@dataclass(frozen=True)
class ModelShape:
    params: float
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tied_embeddings: bool

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def linear_params(self) -> float:
        return self.params - self.embedding_params

    def lora_params(self, rank: int, targets: set[str]) -> int:
        h, kv, ffn = self.hidden, self.kv_dim, self.intermediate
        shapes = {
            "q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
            "gate_proj": (h, ffn), "up_proj": (h, ffn), "down_proj": (ffn, h),
            # Falcon's fused projections
            "query_key_value": (h, h + 2 * kv), "dense": (h, h), "dense_h_to_4h": (h, ffn), "dense_4h_to_h": (ffn, h),
        }
        if "all-linear" in targets:
            targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
        return self.layers * sum(rank * (i + o) for name, (i, o) in shapes.items() if name in targets)


@dataclass(frozen=True)
class Recipe:
    """How a run uses memory: the settings plus the implementation choices that matter."""

    bits: int | None
    lora_rank: int
    lora_targets: tuple[str, ...]
    batch_size: int
    seq_length: int
    activation_checkpointing: bool = True
    activation_offloading: bool = False
    chunked_loss_chunks: int = 0  # 0: full logits (the transformers path)
    upcast_frozen_fp32: bool = False  # peft's prepare_model_for_kbit_training does this


@dataclass
class MemoryEstimate:
    base_weights_gib: float
    adapter_optimizer_gib: float
    activations_gib: float
    overhead_gib: float

    @property
    def total_gib(self) -> float:
        return self.base_weights_gib + self.adapter_optimizer_gib + self.activations_gib + self.overhead_gib

    def as_dict(self) -> dict[str, float]:
        return {**{k: round(v, 3) for k, v in asdict(self).items()}, "total_gib": round(self.total_gib, 3)}


def base_weight_bytes(shape: ModelShape, bits: int | None, upcast_frozen_fp32: bool = False) -> float:
    frozen_dtype_bytes = 4 if upcast_frozen_fp32 else 2
    return shape.linear_params * QUANT_BITS_PER_WEIGHT[bits] / 8 + shape.embedding_params * frozen_dtype_bytes


def estimate(shape: ModelShape, recipe: Recipe) -> MemoryEstimate:
    h, kv, ffn, layers = shape.hidden, shape.kv_dim, shape.intermediate, shape.layers
    tokens = recipe.batch_size * recipe.seq_length
    base = base_weight_bytes(shape, recipe.bits, recipe.upcast_frozen_fp32)
    adapter = shape.lora_params(recipe.lora_rank, set(recipe.lora_targets)) * 16

    per_layer = tokens * (16 * h + 4 * kv + 8 * ffn)
    if recipe.activation_checkpointing:
        kept = 0 if recipe.activation_offloading else layers * tokens * h * 2
        layer_activations = kept + per_layer
    else:
        layer_activations = layers * per_layer
    dequantized_weight = h * ffn * 2 if recipe.bits is not None else 0
    if recipe.chunked_loss_chunks:
        logits = tokens * shape.vocab * (2 + 8 / recipe.chunked_loss_chunks)
    else:
        logits = tokens * shape.vocab * LOGIT_BYTES_FULL
    activations = layer_activations + dequantized_weight + logits
    return MemoryEstimate(base / GIB, adapter / GIB, activations / GIB, OVERHEAD_BYTES / GIB)


def recipe_for(settings) -> Recipe:
    """The recipe this pipeline runs for `settings` on a GPU (see trainer.training)."""
    targets = settings.lora_target_modules or list(settings.architecture.lora_target_modules)
    return Recipe(
        bits=settings.quantization_bits,
        lora_rank=settings.lora_rank,
        lora_targets=tuple(targets),
        batch_size=settings.batch_size,
        seq_length=settings.max_seq_length,
        activation_checkpointing=True,
    )


def estimate_for_settings(settings, architecture_key: str | None = None) -> MemoryEstimate:
    from trainer.catalog import ARCHITECTURES

    arch = ARCHITECTURES[architecture_key or settings.base_model_architecture]
    return estimate(arch.shape, recipe_for(settings))


def fit_advice(settings, estimate_: MemoryEstimate, free_gib: float) -> str:
    """One line saying it won't fit and which settings to change."""
    tips = []
    if settings.quantization_bits in (None, 8):
        tips.append("quantization_rank=4")
    if settings.batch_size > 1:
        tips.append(f"batch_size={max(1, settings.batch_size // 2)} with gradient_accumulation_steps={settings.gradient_accumulation_steps * 2}")
    tips.append(f"max_seq_length={max(256, settings.max_seq_length // 2)}")
    return (
        f"running_on: estimated peak {estimate_.total_gib:.1f} GiB (weights {estimate_.base_weights_gib:.1f}, "
        f"activations {estimate_.activations_gib:.1f}) exceeds the {free_gib:.1f} GiB free on this GPU; "
        f"try {', '.join(tips)}, or a GPU with more memory"
    )
