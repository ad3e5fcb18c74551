"""QLoRA on a GPU: peak memory, tokens/s and MFU for real architectures' shapes (random weights).

For each shape (LLaMA 3.1 8B, Mistral 7B), the script builds a `LlamaConfig`/`MistralConfig` model
of the published dimensions with random bf16 weights, saves it, and loads it back through the
pipeline's own code path (`trainer.model.load_base_model` with NF4 + double quantization, then
`attach_lora`, gradient checkpointing on). It trains on packed batches (batch 2 x 2048 tokens
flattened into one row with restarting position ids) and reports, after warm-up steps:

- peak GPU memory: torch.cuda.max_memory_allocated
- tokens/s over the timed steps
- MFU = tokens/s x (4 N + 4 L s h) / peak bf16 FLOP/s, where 4 N counts the forward and the
  input-gradient backward through the frozen base (no weight gradients), 4 L s h the causal
  attention, and the peak is a bf16 matmul measured on this GPU in the same run.

Anchors: torchtune LLaMA 3.1 8B QLoRA 7.4 GiB and 2,413 tok/s on an RTX 4090; unsloth claims 2x
HF+FA2 speed and -70 % VRAM.

    python benchmarks/gpu_qlora.py               # on a CUDA machine; writes $OUT/gpu_qlora.md if OUT is set
    python benchmarks/gpu_qlora.py --dry-run     # the same code on a tiny shape on the CPU (CI runs this)

Last line: `RATIO mfu_llama31_8b <mfu>` (or `RATIO dry_run_ok 1` for --dry-run).
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
    "llama-3.1-8b": dict(kind="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0, max_position_embeddings=8192),
    "mistral-7b": dict(kind="mistral", vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, rope_theta=1000000.0, max_position_embeddings=8192),
    "tiny (dry run)": dict(kind="llama", vocab_size=2048, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096),
}


def build_and_save(shape: dict, folder: Path, device: str) -> int:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

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


def run_shape(name: str, shape: dict, seq: int, batch: int, warmup: int, steps: int, device: str, peak_flops: float) -> dict:
    import torch

    from trainer.model import Runtime, attach_lora, load_base_model

    runtime = Runtime(device="cuda" if device == "cuda" else "cpu", compute_dtype="bfloat16" if device == "cuda" else "float32",
                      quantization="nf4+double-quant (bitsandbytes)")
    with tempfile.TemporaryDirectory() as tmp:
        n_params = build_and_save(shape, Path(tmp), device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        model = load_base_model(Path(tmp), 4, runtime)
    model = attach_lora(model, rank=16, alpha=32, dropout=0.0,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                        seed=0, gradient_checkpointing=device == "cuda")
    model.config.use_cache = False
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    tokens = batch * seq
    # Packed: `batch` sequences of `seq` tokens flattened into one row, position ids restarting.
    input_ids = torch.randint(0, shape["vocab_size"], (1, tokens), device=model.device)
    position_ids = torch.arange(seq, device=model.device).repeat(batch).unsqueeze(0)
    labels = input_ids.clone()
    labels[0, ::seq] = -100

    def step():
        loss = model(input_ids=input_ids, position_ids=position_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tok_s = tokens * steps / seconds
    layers, hidden = shape["num_hidden_layers"], shape["hidden_size"]
    flops_per_token = 4 * n_params + 4 * layers * seq * hidden
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    del model, optimizer
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"shape": name, "params_b": n_params / 1e9, "peak_gib": peak_gib, "tokens_per_s": tok_s,
            "mfu": tok_s * flops_per_token / peak_flops if peak_flops == peak_flops else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny shape on the CPU: checks the code path, measures nothing real")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    import torch

    if args.dry_run:
        device, names, seq, steps = "cpu", ["tiny (dry run)"], 128, 2
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: run with --dry-run on a CPU machine")
        device, names, seq, steps = "cuda", ["llama-3.1-8b", "mistral-7b"], args.seq, args.steps
    card = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (dry run)"
    peak = measured_bf16_peak(device)
    rows = [run_shape(n, SHAPES[n], seq, args.batch, 1 if args.dry_run else args.warmup, steps, device, peak) for n in names]

    lines = [f"device: {card}; torch {torch.__version__}; measured bf16 matmul peak {peak / 1e12:.0f} TFLOP/s" if peak == peak
             else f"device: {card}",
             f"batch {args.batch} x {seq} tokens packed, NF4 + double quant, LoRA r16 all linear, gradient checkpointing",
             "", "| shape | params (B) | peak GiB | tokens/s | MFU |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['params_b']:.2f} | {r['peak_gib']:.2f} | {r['tokens_per_s']:.0f} | {r['mfu']:.1%} |")
    lines += ["", "anchors: torchtune LLaMA 3.1 8B QLoRA 7.4 GiB, 2,413 tok/s (RTX 4090); unsloth: 2x HF+FA2, -70% VRAM"]
    text = "\n".join(lines)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_qlora.md").write_text(text + "\n")
    if args.dry_run:
        print("RATIO dry_run_ok 1")
    else:
        print(f"RATIO mfu_llama31_8b {rows[0]['mfu']:.4f}")


if __name__ == "__main__":
    main()
