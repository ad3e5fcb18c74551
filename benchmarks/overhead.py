"""Orchestration overhead: the whole flow vs the bare training call, same settings, same run.

- bare: `trainer.train.loop.train` on the same train rows, nothing else (no Prefect, MLflow, GX).
- flow: the `llm-trainer` flow (validate with GX, resolve, train, evaluate, register the pyfunc
  model in MLflow, back up with a verified manifest), against an already running Prefect API as in
  a deployment. The one-off start of Prefect's temporary local server, which a plain
  `llm-trainer run` without PREFECT_API_URL pays once per invocation, is measured and printed
  separately.

One bare and one flow run each read 1.08 and 1.16 on the same commit of a shared 2-core machine:
the bare training alone moves by several seconds from run to run. So the two alternate (bare,
flow, bare, flow, ...: a slow minute on the machine hits both sides alike), `--repeats` times
each, and the figure is the ratio of the medians, with each side's spread (min-max) and the ratio
of each adjacent pair beside it.

    .venv/bin/python benchmarks/overhead.py [--steps 600] [--repeats 3]

Prints the fixed overhead (median flow - median bare, seconds) and, last,
`RATIO flow_over_bare <median flow / median bare>`.
Targets: ratio <= 1.15 (aim <= 1.10) for a training of about 2 minutes, fixed overhead < 15 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_home = tempfile.mkdtemp(prefix="llm-trainer-overhead-")
os.environ["LLM_TRAINER_HOME"] = str(Path(_home) / "state")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from trainer.config.state import apply_environment_defaults  # noqa: E402

apply_environment_defaults()


def bare_run(settings, model_dir, train_rows) -> tuple[float, float]:
    """The bare training call; (seconds, seconds of the training loop alone)."""
    from trainer.train.job import TrainJob
    from trainer.train.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        job = TrainJob(settings.model_copy(update={"output_dir": Path(tmp)}), model_dir, train_rows, Path(tmp))
        result = train(job, show_progress=False)
        return time.perf_counter() - t0, result.train_seconds


def flow_run(settings) -> tuple[float, int]:
    """The whole flow; (seconds, global step)."""
    from flows.pipeline import llm_trainer

    t0 = time.perf_counter()
    summary = llm_trainer(settings)
    return time.perf_counter() - t0, summary.global_step


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="iterations; 600 is about 2 minutes on 2 cores")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, alternating (at least 3)")
    args = parser.parse_args()

    from trainer.config.loading import load_settings
    from trainer.data.contracts.validate import validate_dataset
    from trainer.data.split import split_examples
    from trainer.model.tiny import ensure_tiny_model

    model_dir = ensure_tiny_model()  # built once, outside both measurements
    settings = load_settings(
        "demo", None, [f"max_steps={args.steps}", "save_every_n_iterations=100", "learning_rate=1e-3"]
    )

    started = time.perf_counter()
    from prefect.testing.utilities import prefect_test_harness

    bare, loop, flow, steps = [], [], [], set()
    with prefect_test_harness(server_startup_timeout=240):  # a loaded 2-core machine can take minutes
        server_start = time.perf_counter() - started
        _, rows = validate_dataset(settings.training_data_path)
        train_rows, _ = split_examples(rows, settings.eval_fraction, settings.random_seed)
        for i in range(args.repeats):
            seconds, loop_seconds = bare_run(settings, model_dir, train_rows)
            bare.append(seconds)
            loop.append(loop_seconds)
            # Its own registered model each time: every flow run does the same work (a first
            # version, no champion to score against), as the bare runs do.
            seconds, step = flow_run(settings.model_copy(update={"registered_model_name": f"overhead-{i}"}))
            flow.append(seconds)
            steps.add(step)
            print(
                f"repeat {i + 1}: bare {bare[-1]:.1f} s, flow {flow[-1]:.1f} s, ratio {flow[-1] / bare[-1]:.3f}; "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )

    b, f = statistics.median(bare), statistics.median(flow)
    print()
    print(f"{'measure':45s} {'median s':>9s} {'spread s':>12s}")
    print(f"{'bare train() (load, tokenize, train, save)':45s} {b:9.1f} {spread(bare):>12s}")
    print(f"{'  of which the training loop':45s} {statistics.median(loop):9.1f} {spread(loop):>12s}")
    print(f"{'whole flow (6 stages, Prefect + MLflow + GX)':45s} {f:9.1f} {spread(flow):>12s}")
    print(f"{'fixed overhead (median flow - median bare)':45s} {f - b:9.1f}")
    print(f"{'Prefect temporary server start (once per run)':45s} {server_start:9.1f}")
    pairs = [x / y for x, y in zip(flow, bare, strict=True)]
    print(f"per-pair flow/bare: {', '.join(f'{r:.3f}' for r in pairs)} (spread {min(pairs):.3f}-{max(pairs):.3f})")
    print(f"steps {sorted(steps)}, repeats {args.repeats}, load average {os.getloadavg()[0]:.1f} (1 min)")
    print(f"RATIO flow_over_bare {f / b:.3f}")


if __name__ == "__main__":
    main()
