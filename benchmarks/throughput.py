"""Training throughput: our trainer vs a plain transformers.Trainer + peft baseline, same run.

Both train the same tiny model (4-bit base, same LoRA config), on the same rows (the bundled
sample plus a long-tailed length mix: ~85 % short answers, ~15 % long ones), for the same number
of optimizer steps at the same effective batch. The baseline is the recipe most tutorials use:
`Trainer` with `DataCollatorForSeq2Seq` (per-batch dynamic padding), no packing, LoRA dropout
0.05 (the common recipe's value; ours defaults to 0, see docs/performance.md). Ours is
`trainer.train.loop.train` with its defaults (`batching: auto`, which on the CPU is length-grouped
batches with per-batch padding); ours with `batching: packed` (flattened, padding-free) runs too,
for the record. Runs alternate, repeats >= 3 each; the metric is non-padding tokens per second of
the training loop (model load excluded), median over repeats. Both count tokens the same way: in
`compute_loss`, on the batches actually trained.

    .venv/bin/python benchmarks/throughput.py [--steps 30] [--repeats 3]

Last line: `RATIO throughput_ours_over_baseline <median ours / median baseline>` (target >= 1.5).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LLM_TRAINER_HOME", str(Path(__file__).resolve().parent.parent / ".llm-trainer"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from trainer.config.loading import load_settings
from trainer.config.presets import DEMO_DATA
from trainer.data.formats import Example
from trainer.data.readers import read_rows
from trainer.data.shapes import to_messages
from trainer.model.tiny import ensure_tiny_model

COMMON_RECIPE_LORA_DROPOUT = 0.05  # peft/tutorial recipes; the baseline keeps it whatever our default is


def benchmark_rows(seed: int = 0, extra: int = 240) -> list[Example]:
    """The bundled rows plus synthetic ones with a long-tailed answer length (from the corpus text)."""
    rows = list(read_rows(DEMO_DATA / "conversations.jsonl", DEMO_DATA))
    examples = [Example(r.key, r.file, r.line, messages=to_messages(r.record, "chat")) for r in rows]
    words = " ".join(m["content"] for e in examples for m in e.messages).split()
    rng = random.Random(seed)
    for i in range(extra):
        n = rng.randint(12, 45) if rng.random() < 0.85 else rng.randint(120, 190)  # ~16-64 / up to ~256 tokens
        start = rng.randrange(len(words) - n)
        examples.append(
            Example(
                f"synthetic-{i}",
                "synthetic",
                i,
                messages=[
                    {"role": "user", "content": " ".join(words[start : start + 8])},
                    {"role": "assistant", "content": " ".join(words[start + 8 : start + 8 + n])},
                ],
            )
        )
    rng.shuffle(examples)
    return examples


def run_ours(settings, model_dir, examples, out: Path) -> tuple[float, int, float]:
    from trainer.train.job import TrainJob
    from trainer.train.loop import train

    result = train(
        TrainJob(settings.model_copy(update={"output_dir": out}), model_dir, examples, out), show_progress=False
    )
    if result.resumed_from or result.global_step != settings.max_steps:
        raise SystemExit(
            f"{out}: trained {result.global_step} steps (resumed from {result.resumed_from}); expected a fresh run"
        )
    return result.non_padding_tokens / result.train_seconds, result.non_padding_tokens, result.padding_fraction


def run_packed(settings, model_dir, examples, out: Path) -> tuple[float, int, float]:
    return run_ours(settings.model_copy(update={"batching": "packed"}), model_dir, examples, out)


def run_baseline(settings, model_dir, examples, out: Path, logging_steps: int = 10) -> tuple[float, int, float]:
    """Plain transformers.Trainer + peft, per-batch padding, no packing: the common recipe."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        BitsAndBytesConfig,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    from trainer.model.tokens import tokenize_examples

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenized, _ = tokenize_examples(tokenizer, examples, settings.max_seq_length)
    features = [{"input_ids": t.input_ids, "labels": t.labels} for t in tokenized]
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype=torch.float32,
        device_map={"": "cpu"},
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32,
        ),
    )
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    torch.manual_seed(settings.random_seed)
    model = get_peft_model(
        model,
        LoraConfig(
            r=settings.lora_rank,
            lora_alpha=settings.lora_alpha,
            lora_dropout=COMMON_RECIPE_LORA_DROPOUT,
            target_modules=list(settings.architecture.lora_target_modules),
            task_type="CAUSAL_LM",
        ),
    )
    for module in model.modules():  # the same CPU 4-bit fix ours applies, so both train correctly
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")
    counts = {"real": 0, "padded": 0}

    class CountingTrainer(Trainer):  # counts the batches actually trained (not the loader's prefetch)
        def compute_loss(self, model, inputs, *args, **kwargs):
            counts["real"] += int(inputs["attention_mask"].sum())
            counts["padded"] += inputs["attention_mask"].numel()
            return super().compute_loss(model, inputs, *args, **kwargs)

    args = TrainingArguments(
        output_dir=str(out),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        logging_steps=logging_steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=settings.random_seed,
        remove_unused_columns=False,
    )
    trainer = CountingTrainer(model=model, args=args, train_dataset=features, data_collator=collator)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return counts["real"] / seconds, counts["real"], 1 - counts["real"] / counts["padded"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    model_dir = ensure_tiny_model()
    examples = benchmark_rows()
    settings = load_settings(
        "demo",
        None,
        [
            f"max_steps={args.steps}",
            "batch_size=8",
            "save_every_n_iterations=100000",
            "max_seq_length=512",
            "learning_rate=1e-3",
        ],
    )
    runners = {"ours (default)": run_ours, "baseline (padded)": run_baseline, "ours (packed)": run_packed}
    results: dict[str, list[float]] = {name: [] for name in runners}
    padding: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for index, (name, runner) in enumerate(runners.items()):
                # A folder per run: a finished run leaves a final checkpoint that another would resume from.
                rate, tokens, pad_fraction = runner(settings, model_dir, examples, Path(tmp) / f"run{index}-{repeat}")
                results[name].append(rate)
                padding[name] = pad_fraction
                print(f"repeat {repeat + 1}: {name:18s} {rate:10.0f} tok/s  ({tokens} non-padding tokens)", flush=True)
    print()
    print(f"{'trainer':20s} {'median tok/s':>12s} {'runs':>30s} {'padding':>8s}")
    for name, rates in results.items():
        print(
            f"{name:20s} {statistics.median(rates):12.0f} {', '.join(f'{r:.0f}' for r in rates):>30s} "
            f"{padding[name]:8.1%}"
        )
    ratio = statistics.median(results["ours (default)"]) / statistics.median(results["baseline (padded)"])
    print(
        f"rows {len(examples)}, steps {args.steps}, batch {settings.batch_size}, torch threads "
        f"{torch.get_num_threads()}"
    )
    print(f"RATIO throughput_ours_over_baseline {ratio:.2f}")


if __name__ == "__main__":
    main()
