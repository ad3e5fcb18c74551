"""Start-up cost of the CLI: `llm-trainer --help` and a config error, wall time, median of N runs.

Target: under 1 s each (a bad setting must come back before torch or any service is imported).
Baseline measured in the same run: `python -c pass` with the same interpreter, so the ratio says
how much the CLI adds over a bare interpreter start.

    .venv/bin/python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = str(Path(sys.executable).with_name("llm-trainer"))


def wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    baseline = wall([sys.executable, "-c", "pass"], args.repeats)
    cases = {
        "llm-trainer --help": [CLI, "--help"],
        "config error (quantization_rank=3)": [CLI, "run", "--set", "quantization_rank=3"],
        "config error (unknown preset)": [CLI, "run", "--preset", "nope"],
    }
    print(f"{'case':40s} {'median s':>9s} {'target':>7s}")
    print(f"{'python -c pass (baseline)':40s} {baseline:9.3f}")
    worst = 0.0
    for name, cmd in cases.items():
        seconds = wall(cmd, args.repeats)
        worst = max(worst, seconds)
        print(f"{name:40s} {seconds:9.3f} {'< 1 s':>7s} {'ok' if seconds < 1 else 'SLOW'}")
    print(f"RATIO startup_worst_over_bare_python {worst / baseline:.2f}")


if __name__ == "__main__":
    main()
