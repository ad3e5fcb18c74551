"""Orchestration overhead: the whole flow vs the bare training call, same settings, same run.

- bare: `trainer.training.train` on the same train rows, nothing else (no Prefect, MLflow, GX).
- flow: the `llm-trainer` flow (validate with GX, resolve, train, evaluate, register the pyfunc
  model in MLflow, back up with a verified manifest), against an already running Prefect API as in
  a deployment. The one-off start of Prefect's temporary local server, which a plain
  `llm-trainer run` without PREFECT_API_URL pays once per invocation, is measured and printed
  separately.

    .venv/bin/python benchmarks/overhead.py [--steps 600]

Prints the fixed overhead (flow - bare, seconds) and, last, `RATIO flow_over_bare <value>`.
Targets: ratio <= 1.15 for a training of about 2 minutes, fixed overhead < 15 s.
"""

from __future__ import annotations

import argparse
import os
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

from trainer.state import apply_environment_defaults  # noqa: E402

apply_environment_defaults()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="iterations; 600 is about 2 minutes on 2 cores")
    args = parser.parse_args()

    from trainer.contracts import validate_dataset
    from trainer.data import split_examples
    from trainer.settings import load_settings
    from trainer.tiny import ensure_tiny_model
    from trainer.training import train

    model_dir = ensure_tiny_model()  # built once, outside both measurements
    settings = load_settings("demo", None, [f"max_steps={args.steps}", "save_every_n_iterations=100", "learning_rate=1e-3"])

    started = time.perf_counter()
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        server_start = time.perf_counter() - started
        from flows.pipeline import llm_trainer

        _, rows = validate_dataset(settings.training_data_path)
        train_rows, _ = split_examples(rows, settings.eval_fraction, settings.random_seed)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = train(settings.model_copy(update={"output_dir": Path(tmp)}), model_dir, train_rows, Path(tmp), show_progress=False)
            bare = time.perf_counter() - t0

        t0 = time.perf_counter()
        summary = llm_trainer(settings)
        flow = time.perf_counter() - t0

    print()
    print(f"{'measure':45s} {'seconds':>9s}")
    print(f"{'bare train() (load, tokenize, train, save)':45s} {bare:9.1f}")
    print(f"{'  of which the training loop':45s} {result.train_seconds:9.1f}")
    print(f"{'whole flow (6 stages, Prefect + MLflow + GX)':45s} {flow:9.1f}")
    print(f"{'fixed overhead (flow - bare)':45s} {flow - bare:9.1f}")
    print(f"{'Prefect temporary server start (once per run)':45s} {server_start:9.1f}")
    print(f"steps {summary.global_step}, model version {summary.model_version}")
    print(f"RATIO flow_over_bare {flow / bare:.3f}")


if __name__ == "__main__":
    main()
