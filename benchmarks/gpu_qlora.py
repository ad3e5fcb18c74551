"""QLoRA on a GPU: peak memory against the estimate, tokens/s and MFU for real shapes (random weights).

For each shape (LLaMA 3.1 8B, Mistral 7B), the script builds a `LlamaConfig`/`MistralConfig` model
of the published dimensions with random bf16 weights, saves it, and loads it back through the
pipeline's own code path (`trainer.model.loading.load_base_model` with NF4 + double quantization,
then `attach_lora`, gradient checkpointing on). Each step is what `PipelineTrainer.compute_loss`
runs by default: the forward under activation offloading (`trainer.model.loading.activation_offloading`)
and the loss from the final hidden states (`trainer.model.loss.causal_lm_loss`: Liger Kernel's
fused linear cross-entropy with the `gpu` extra, the PyTorch chunked loss without it), LoRA
dropout 0. Packed batches: batch 2 x 2048 tokens flattened into one row with restarting position
ids; transformers derives the document mask from the position ids (no attention mask is passed),
for both attention implementations compared:

- `sdpa`: PyTorch's scaled_dot_product_attention with that mask materialised ([tokens, tokens]);
- `flex_attention`: PyTorch FlexAttention with a block mask built from the same position ids
  (document masking without an extra package; compiled on first use, which the warm-up absorbs).

Per shape and attention, after warm-up steps:

- peak GPU memory (torch.cuda.max_memory_allocated) against `trainer.model.memory.estimate` for
  the same recipe (`peak / estimate`) and against torchtune's 7.4 GiB for the 8B recipe;
- tokens/s over the timed steps;
- MFU = tokens/s x (4 N + 4 L s h) / peak bf16 FLOP/s, where 4 N counts the forward and the
  input-gradient backward through the frozen base (no weight gradients), 4 L s h the causal
  attention, and the peak is a bf16 matmul measured on this GPU in the same run.

The faster attention at LLaMA 3.1 8B is printed as the CUDA default to choose.

Anchors: torchtune LLaMA 3.1 8B QLoRA 7.4 GiB and 2,413 tok/s on an RTX 4090; unsloth claims 2x
HF+FA2 speed and -70 % VRAM.

    python benchmarks/gpu_qlora.py               # on a CUDA machine; writes $OUT/gpu_qlora.md if OUT is set
    python benchmarks/gpu_qlora.py --dry-run     # the same code on a tiny shape on the CPU (CI runs this)

Last line: `RATIO mfu_llama31_8b <mfu of the faster attention>` (or `RATIO dry_run_ok 1` for --dry-run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = {
    "llama-3.1-8b": dict(
        kind="llama",
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        rope_theta=500000.0,
        max_position_embeddings=8192,
    ),
    "mistral-7b": dict(
        kind="mistral",
        vocab_size=32768,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        rope_theta=1000000.0,
        max_position_embeddings=8192,
    ),
    "tiny (dry run)": dict(
        kind="llama",
        vocab_size=2048,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    ),
}


def build_and_save(shape: dict, folder: Path, device: str) -> int:
    import torch
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
    )

    kind = shape["kind"]
    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if kind == "llama" else (MistralConfig, MistralForCausalLM)
    config = config_cls(**{k: v for k, v in shape.items() if k != "kind"}, tie_word_embeddings=False)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = model_cls(config).to(dtype)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder, safe_serialization=True)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return n_params


def measured_bf16_peak(device: str) -> float:
    import torch

    if device != "cuda":
        return float("nan")
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, iters = time.perf_counter(), 20
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (time.perf_counter() - start)


CATALOG_KEYS = {"llama-3.1-8b": "llama-3.1-8b-instruct", "mistral-7b": "mistral-7b"}
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RANK = 16


def estimated_gib(name: str, shape: dict, n_params: int, seq: int, batch: int, device: str) -> float:
    """trainer.model.memory's peak for this exact run (the catalog's shape when it has one)."""
    from trainer.config.catalog import ARCHITECTURES, ModelShape
    from trainer.model.memory import Recipe, estimate, loss_path

    if name in CATALOG_KEYS:
        model_shape = ARCHITECTURES[CATALOG_KEYS[name]].shape
    else:
        model_shape = ModelShape(
            n_params,
            hidden=shape["hidden_size"],
            layers=shape["num_hidden_layers"],
            intermediate=shape["intermediate_size"],
            vocab=shape["vocab_size"],
            heads=shape["num_attention_heads"],
            kv_heads=shape["num_key_value_heads"],
            tied_embeddings=False,
        )
    on_cuda = device == "cuda"
    recipe = Recipe(
        bits=4,
        lora_rank=RANK,
        lora_targets=TARGETS,
        batch_size=batch,
        seq_length=seq,
        lora_dropout=0.0,
        gradient_checkpointing=on_cuda,
        activation_offloading=on_cuda,
        loss=loss_path(True, device),
        packed=True,
    )
    return estimate(model_shape, recipe).total_gib


def load_model(folder: Path, device: str):
    from trainer.model.loading import attach_lora, load_base_model
    from trainer.model.runtime import Runtime

    runtime = Runtime(
        device="cuda" if device == "cuda" else "cpu",
        compute_dtype="bfloat16" if device == "cuda" else "float32",
        quantization="nf4+double-quant (bitsandbytes)",
    )
    model = load_base_model(folder, 4, runtime)
    model = attach_lora(
        model,
        rank=RANK,
        alpha=2 * RANK,
        dropout=0.0,
        target_modules=list(TARGETS),
        seed=0,
        gradient_checkpointing=device == "cuda",
    )
    model.config.use_cache = False
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return model


def run_attention(folder: Path, shape: dict, attention: str, seq: int, batch: int, warmup: int, steps: int, device):
    """Train `steps` timed steps after `warmup`; (peak GiB, tokens/s, loss kernel, last loss)."""
    import torch

    from trainer.model.loading import activation_offloading
    from trainer.model.loss import causal_lm_loss, loss_kernel

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = load_model(folder, device)
    model.set_attn_implementation(attention)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    tokens = batch * seq
    # Packed: `batch` sequences of `seq` tokens flattened into one row, position ids restarting.
    input_ids = torch.randint(0, shape["vocab_size"], (1, tokens), device=model.device)
    position_ids = torch.arange(seq, device=model.device).repeat(batch).unsqueeze(0)
    labels = input_ids.clone()
    labels[0, ::seq] = -100
    batch_inputs = {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}

    def step() -> float:
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")  # the Trainer's bf16
        with autocast, activation_offloading(device == "cuda"):  # as PipelineTrainer.compute_loss
            loss = causal_lm_loss(model, batch_inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach().item()

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        last = step()
    if device == "cuda":
        torch.cuda.synchronize()
    tok_s = tokens * steps / (time.perf_counter() - start)
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    kernel = loss_kernel(device)
    step = model = optimizer = None  # free the GPU memory before the next run
    if device == "cuda":
        torch.cuda.empty_cache()
    return peak_gib, tok_s, kernel, last


def run_shape(name: str, shape: dict, args, attentions: list[str], device: str, peak_flops: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        n_params = build_and_save(shape, Path(tmp), device)
        estimate_gib = estimated_gib(name, shape, n_params, args.seq, args.batch, device)
        layers, hidden = shape["num_hidden_layers"], shape["hidden_size"]
        flops_per_token = 4 * n_params + 4 * layers * args.seq * hidden
        for attention in attentions:
            peak_gib, tok_s, kernel, loss = run_attention(
                Path(tmp), shape, attention, args.seq, args.batch, args.warmup, args.steps, device
            )
            rows.append(
                {
                    "shape": name,
                    "attention": attention,
                    "loss_kernel": kernel,
                    "params_b": n_params / 1e9,
                    "peak_gib": peak_gib,
                    "estimate_gib": estimate_gib,
                    "tokens_per_s": tok_s,
                    "mfu": tok_s * flops_per_token / peak_flops if peak_flops == peak_flops else float("nan"),
                    "loss": loss,
                }
            )
    return rows


def report(rows: list[dict], card: str, torch_version: str, peak: float, args) -> str:
    lines = [
        f"device: {card}; torch {torch_version}; measured bf16 matmul peak {peak / 1e12:.0f} TFLOP/s"
        if peak == peak
        else f"device: {card}",
        f"batch {args.batch} x {args.seq} tokens packed, NF4 + double quant, LoRA r{RANK} all linear, no LoRA dropout, "
        "gradient checkpointing + activation offloading (CUDA), the pipeline's loss",
        "",
        "| shape | attention | loss | params (B) | peak GiB | estimate GiB | peak / estimate | tokens/s | MFU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['attention']} | {r['loss_kernel']} | {r['params_b']:.2f} | {r['peak_gib']:.2f} | "
            f"{r['estimate_gib']:.2f} | {r['peak_gib'] / r['estimate_gib']:.2f} | {r['tokens_per_s']:.0f} | "
            f"{r['mfu']:.1%} |"
        )
    lines += [
        "",
        "anchors: torchtune LLaMA 3.1 8B QLoRA 7.4 GiB, 2,413 tok/s (RTX 4090); unsloth: 2x HF+FA2, -70% VRAM",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny shape on the CPU: checks the code path, measures nothing real"
    )
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--attention", help="comma-separated implementations to compare (default: sdpa,flex_attention; dry run: sdpa)"
    )
    args = parser.parse_args()
    attentions = (args.attention or ("sdpa" if args.dry_run else "sdpa,flex_attention")).split(",")

    import torch

    if args.dry_run:
        device, names = "cpu", ["tiny (dry run)"]
        args.seq, args.steps, args.warmup = 128, 2, 1
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --dry-run to check the code path on the CPU")
        device, names = "cuda", ["llama-3.1-8b", "mistral-7b"]
    card = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (dry run)"
    peak = measured_bf16_peak(device)
    rows = [row for n in names for row in run_shape(n, SHAPES[n], args, attentions, device, peak)]
    text = report(rows, card, torch.__version__, peak, args)
    first = [r for r in rows if r["shape"] == names[0]]
    best = max(first, key=lambda r: r["tokens_per_s"])
    text += f"\nfaster attention at {names[0]}: {best['attention']} ({best['tokens_per_s']:.0f} tokens/s)"
    if device == "cuda" and names[0] == "llama-3.1-8b":
        text += f"; its peak {best['peak_gib']:.2f} GiB against torchtune's 7.4 GiB"
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_qlora.md").write_text(text + "\n")
    if args.dry_run:
        print("RATIO dry_run_ok 1")
    else:
        print(f"RATIO mfu_llama31_8b {best['mfu']:.4f}")


if __name__ == "__main__":
    main()
