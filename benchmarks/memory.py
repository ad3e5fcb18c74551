"""Peak memory of a training step at LLaMA 3's vocabulary: our path vs plain `Trainer` + peft.

A LLaMA model with LLaMA 3's vocabulary (128,256 entries) and a small body (hidden 256, 2 layers,
random weights, untied head, the tiny model's tokenizer), saved as a model folder; chat rows whose
answers make each row ~2,048 tokens. Both sides train it for a few iterations at batch 2 (4-bit
base, the same LoRA settings, the same rows, tokenized with answer-only labels), each in its own
fresh process, on the CPU:

- ours: `trainer.train.loop.train` with the pipeline's defaults (its Trainer subclass, collator and
  masks; the loss from the final hidden states in chunks);
- baseline: the common recipe, `transformers.Trainer` + peft with `DataCollatorForSeq2Seq`
  (transformers' stock loss: full logits, their fp32 upcast and gradient).

Peak memory = the process's peak resident set (ru_maxrss), also shown above the resident set just
before the model loads. Slow on 2 cores (the stock side's 128k-entry logits): ~10 min.

    .venv/bin/python benchmarks/memory.py [--steps 2] [--seq 2048]
    .venv/bin/python benchmarks/memory.py --seq 256 --steps 1      # the quick check the tests run

Last line: `RATIO peak_memory_baseline_over_ours <baseline peak / our peak>` (aim >= 3).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LLM_TRAINER_HOME", str(ROOT / ".llm-trainer"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 128_256
BODY = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def build_model(folder: Path) -> None:
    """The small-bodied model with LLaMA 3's vocabulary, saved with the tiny model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from trainer.model.tiny import ensure_tiny_model

    tiny = ensure_tiny_model()
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    config = LlamaConfig(
        vocab_size=VOCAB,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **BODY,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def long_rows(folder: Path, seq: int, count: int) -> list:
    """Chat rows of about `seq` tokens (prompt + answer), words taken from the bundled data."""
    from trainer.config.presets import DEMO_DATA
    from trainer.data.formats import Example
    from trainer.data.readers import read_rows
    from trainer.data.shapes import to_messages
    from trainer.model.loading import load_tokenizer
    from trainer.model.tokens import tokenize_examples

    tokenizer = load_tokenizer(folder)
    rows = list(read_rows(DEMO_DATA / "conversations.jsonl", DEMO_DATA))
    words = " ".join(m["content"] for r in rows for m in to_messages(r.record, "chat")).split()
    rng = random.Random(0)
    per_token = len(tokenize_examples(tokenizer, [_row(words, 0, 400, Example)], 10**6)[0][0].input_ids) / 400
    examples = []
    for i in range(count):
        n = int(seq / per_token * rng.uniform(0.90, 0.97))
        start = rng.randrange(len(words) - n - 16)
        examples.append(_row(words, start, n, Example, key=f"long-{i}"))
    return examples


def _row(words, start, n, example_cls, key="probe"):
    messages = [
        {"role": "user", "content": " ".join(words[start : start + 16])},
        {"role": "assistant", "content": " ".join(words[start + 16 : start + 16 + n])},
    ]
    return example_cls(key, "synthetic", 0, messages=messages)


def worker_ours(folder: Path, rows, args, out: Path) -> dict:
    from trainer.config.loading import load_settings
    from trainer.train.job import TrainJob
    from trainer.train.loop import train

    settings = load_settings(
        "demo",
        None,
        [f"max_steps={args.steps}", "batch_size=2", f"max_seq_length={args.seq}", "save_every_n_iterations=100000"],
    )
    before = rss_bytes()
    result = train(TrainJob(settings.model_copy(update={"output_dir": out}), folder, rows, out), show_progress=False)
    return {"before": before, "losses": result.loss_history, "tokens": result.non_padding_tokens}


def worker_baseline(folder: Path, rows, args, out: Path) -> dict:
    """transformers.Trainer + peft, per-batch padding, the stock loss (benchmarks/throughput.py's recipe)."""
    from benchmarks.throughput import run_baseline
    from trainer.config.loading import load_settings

    settings = load_settings("demo", None, [f"max_steps={args.steps}", "batch_size=2", f"max_seq_length={args.seq}"])
    before = rss_bytes()
    _, tokens, _ = run_baseline(settings, folder, rows, out, logging_steps=1)
    return {"before": before, "losses": [], "tokens": tokens}


def run_worker(args) -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    folder = Path(args.model_dir)
    rows = long_rows(folder, args.seq, 2 * args.steps)
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        worker = worker_ours if args.worker == "ours" else worker_baseline
        result = worker(folder, rows, args, Path(tmp))
    result.update(peak=peak_rss_bytes(), seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu)
    print("RESULT " + json.dumps(result))


def measure(side: str, model_dir: Path, args) -> dict:
    """One side in a fresh process: nothing the other side allocated can count."""
    command = [sys.executable, __file__, "--worker", side, "--model-dir", str(model_dir)]
    command += ["--steps", str(args.steps), "--seq", str(args.seq)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{side}: worker failed ({done.returncode})\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--worker", choices=("ours", "baseline"))
    parser.add_argument("--model-dir")
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return
    mib = 2**20
    with tempfile.TemporaryDirectory() as tmp:
        build_model(Path(tmp))
        results = {side: measure(side, Path(tmp), args) for side in ("baseline", "ours")}
    print(f"model: LLaMA, vocabulary {VOCAB:,}, {BODY}; batch 2 x {args.seq} tokens, {args.steps} iterations, CPU")
    print(f"{'side':10s} {'peak RSS MiB':>13s} {'above pre-load MiB':>19s} {'wall s':>8s} {'CPU s':>8s} {'tokens':>8s}")
    for side, r in results.items():
        print(
            f"{side:10s} {r['peak'] / mib:13.0f} {(r['peak'] - r['before']) / mib:19.0f} {r['seconds']:8.1f} "
            f"{r['cpu_seconds']:8.1f} {r['tokens']:8d}"
        )
    print(f"load average {os.getloadavg()[0]:.1f} (1 min)")
    print(f"RATIO peak_memory_baseline_over_ours {results['baseline']['peak'] / results['ours']['peak']:.2f}")


if __name__ == "__main__":
    main()
