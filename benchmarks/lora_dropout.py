"""LoRA dropout: what it costs on the CPU and what it buys on held-out rows, in one run.

The demo's training (tiny model, 4-bit base, the bundled rows split as the flow splits them, demo
preset: 120 iterations at batch 8) with `lora_dropout` 0.05 (the common recipe's value) and 0.0
(torchtune's and Unsloth's default), alternating, for several seeds. Per run: the training loop's
wall and CPU seconds (process time: fair on a machine others load) and the held-out loss on the
answer tokens. On a GPU, dropout also keeps a dropped-out copy of every adapted layer's input and
its mask for the backward (trainer/model/memory.py: +0.6 GiB at LLaMA 3 8B batch 2 x 2048).

    .venv/bin/python benchmarks/lora_dropout.py [--seeds 3] [--steps 120]

Last line: `RATIO cpu_seconds_dropout_over_no_dropout <median ratio>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LLM_TRAINER_HOME", str(Path(__file__).resolve().parent.parent / ".llm-trainer"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DROPOUTS = (0.05, 0.0)


def run(settings, model_dir, train_rows, eval_rows, out: Path) -> dict[str, float]:
    """Train with `settings`, then score the held-out rows with the trained model in memory."""
    import torch

    from trainer.evaluate.held_out import evaluate
    from trainer.train.job import TrainJob
    from trainer.train.loop import train

    cpu = time.process_time()
    result = train(
        TrainJob(settings.model_copy(update={"output_dir": out}), model_dir, train_rows, out), show_progress=False
    )
    cpu = time.process_time() - cpu
    torch.manual_seed(0)
    quiet = settings.model_copy(update={"eval_generation_rows": 0})
    report = evaluate(quiet, model_dir, Path(result.adapter_dir), eval_rows)
    return {"wall": result.train_seconds, "cpu": cpu, "eval_loss": report.eval_loss, "train_loss": result.train_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=120)
    args = parser.parse_args()

    from trainer.config.loading import load_settings
    from trainer.data.contracts.validate import validate_dataset
    from trainer.data.split import split_examples
    from trainer.model.tiny import ensure_tiny_model

    model_dir = ensure_tiny_model()
    base = load_settings("demo", None, [f"max_steps={args.steps}", "save_every_n_iterations=100000"])
    _, rows = validate_dataset(base.training_data_path)
    train_rows, eval_rows = split_examples(rows, base.eval_fraction, base.random_seed)
    results: dict[float, list[dict[str, float]]] = {d: [] for d in DROPOUTS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for dropout in DROPOUTS:
                settings = base.model_copy(update={"lora_dropout": dropout, "random_seed": 42 + seed})
                r = run(settings, model_dir, train_rows, eval_rows, Path(tmp) / f"s{seed}-d{dropout}")
                results[dropout].append(r)
                print(
                    f"seed {42 + seed} dropout {dropout:<4}: loop {r['wall']:6.1f} s wall, {r['cpu']:6.1f} s CPU; "
                    f"train loss {r['train_loss']:.4f}, held-out loss {r['eval_loss']:.4f}; "
                    f"load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    print()
    print(f"{'lora_dropout':>12} {'median wall s':>14} {'median CPU s':>13} {'held-out loss (per seed)':>40}")
    for dropout, rs in results.items():
        losses = ", ".join(f"{r['eval_loss']:.4f}" for r in rs)
        print(
            f"{dropout:>12} {statistics.median(r['wall'] for r in rs):14.1f} "
            f"{statistics.median(r['cpu'] for r in rs):13.1f} {losses:>40}"
        )
    deltas = [a["eval_loss"] - b["eval_loss"] for a, b in zip(results[0.05], results[0.0], strict=True)]
    print(f"held-out loss, dropout 0.05 minus 0.0, per seed: {', '.join(f'{d:+.4f}' for d in deltas)}")
    ratios = [a["cpu"] / b["cpu"] for a, b in zip(results[0.05], results[0.0], strict=True)]
    print(f"RATIO cpu_seconds_dropout_over_no_dropout {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
