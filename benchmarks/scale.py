"""Real-sized data: what validation, preparation, 5 training steps and evaluation cost as rows grow.

For each size, Alpaca-shaped rows with a long-tailed length mix (lognormal words per field, a third
with an `input`, 0.5 % exact duplicates) are written as JSON Lines, and `llm-trainer run` runs on
them twice with `max_steps=5` and the defaults otherwise, each time as a fresh process in a fresh
state folder for that size: the first run validates and prepares, the second finds both done.
Each run's peak RSS is the largest of its processes (RUSAGE_CHILDREN of a launcher around it);
phase times come from the run's own log lines. Then a data-parallel run (`num_processes=2`) on
the smallest size, in a fresh state folder, must prepare the rows once.

    python benchmarks/scale.py [ROWS ...]   # default 10000 100000 1000000; the tiny model

Prints the table, then `RATIO peak_rss_1m_over_10k X` (aim <= 1.5), `RATIO prepare_second_over_first X`
(largest size; aim <= 0.05), `RATIO eval_1m_over_100k X` (aim within 0.8-1.2), `CHECK rows_accounted`
and `CHECK data_parallel_prepared_once`.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORDS = [
    "the",
    "order",
    "ships",
    "today",
    "please",
    "check",
    "your",
    "account",
    "settings",
    "and",
    "the",
    "invoice",
    "total",
    "for",
    "this",
    "month",
    "we",
    "can",
    "help",
    "with",
    "refunds",
    "returns",
    "delivery",
    "times",
    "payment",
    "methods",
    "password",
    "resets",
    "product",
    "sizes",
    "warranty",
    "claims",
    "and",
    "more",
]

LAUNCHER = """
import resource, subprocess, sys
rc = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "w"), stderr=subprocess.STDOUT).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _words(rng: random.Random, median: float, cap: int) -> str:
    n = max(1, min(cap, int(rng.lognormvariate(0, 0.8) * median)))
    return " ".join(rng.choices(WORDS, k=n))


def write_rows(path: Path, rows: int, seed: int = 0) -> None:
    """Alpaca rows: instruction ~12 words, a third with an input ~20, output ~60 (long tail, capped
    so nearly all fit max_seq_length); every 200th row repeats an earlier one exactly."""
    rng = random.Random(seed)
    written: list[str] = []
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            if i % 200 == 199:
                line = written[rng.randrange(len(written))]
            else:
                row = {
                    "instruction": f"Request {i}: " + _words(rng, 12, 60),
                    "input": _words(rng, 20, 80) if rng.random() < 0.33 else "",
                    "output": _words(rng, 60, 250),
                }
                line = json.dumps(row)
                if len(written) < 10_000:
                    written.append(line)
            fh.write(line + "\n")


def _clock(line: str) -> float | None:
    match = re.match(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) \|", line)
    if not match:
        return None
    h, m, s, ms = (int(g) for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def phases(log: str) -> dict[str, float | str]:
    """Seconds per phase from the run's log: validate (flow start to the validate task's end),
    prepare (its own line), train_5_steps (the train call less prepare: loading the model, 5 steps,
    saving the adapter), evaluate (train's end to evaluate's end)."""
    stamps = [(t, line) for line in log.splitlines() if (t := _clock(line)) is not None]
    out: dict[str, float | str] = {}
    start = stamps[0][0] if stamps else 0.0

    def finished(task: str) -> float | None:
        return next((t for t, line in stamps if f"Task run '{task}-" in line and "Finished in state" in line), None)

    if (end := finished("validate")) is not None:
        out["validate"] = end - start
    if m := re.search(r"Training rows (prepared|reused, prepared before): .* in ([\d.]+)s", log):
        out["prepared"], out["prepare"] = (
            ("reused" if m.group(1).startswith("reused") else "prepared"),
            float(m.group(2)),
        )
    if m := re.search(r"Trained \d+ steps in ([\d.]+)s", log):  # the whole train call: prepare, load, 5 steps, save
        out["train_5_steps"] = float(m.group(1)) - float(out.get("prepare", 0.0))
    train_end, eval_end = finished("train"), finished("evaluate")
    if train_end is not None and eval_end is not None:
        out["evaluate"] = eval_end - train_end
    if m := re.search(r"Validated .*?: (\d+) rows, (\d+) valid, (\d+) quarantined, (\d+) exact duplicates", log):
        total, valid, quarantined, duplicates = (int(g) for g in m.groups())
        out["rows"], out["accounted"] = total, total == valid + quarantined + duplicates
    return out


def run_once(data: Path, home: Path, log_path: Path, *extra: str) -> dict:
    env = {**os.environ, "LLM_TRAINER_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [
        str(Path(sys.executable).with_name("llm-trainer")),
        "run",
        "--set",
        f"training_data_path={data}",
        "--set",
        "max_steps=5",
        *extra,
    ]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(log_path), *command], env=env, capture_output=True, text=True, cwd=home
    )
    wall = time.perf_counter() - started
    rc, peak_kib = (int(x) for x in done.stdout.split())
    log = log_path.read_text(encoding="utf-8", errors="replace")
    if rc != 0:
        raise SystemExit(f"run failed (rc {rc}); its log: {log_path}\n{log[-3000:]}")
    return {"wall": wall, "peak_rss_gib": peak_kib / 2**20, **phases(log)}


def main(sizes: list[int]) -> None:
    work = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    print(f"{datetime.now():%H:%M:%S} working in {work}", flush=True)
    results: dict[int, list[dict]] = {}
    for rows in sizes:
        data = work / f"rows-{rows}.jsonl"
        write_rows(data, rows)
        home = work / f"home-{rows}"
        home.mkdir()
        results[rows] = []
        for attempt in ("first", "second"):
            result = run_once(data, home, work / f"log-{rows}-{attempt}.txt")
            results[rows].append(result)
            print(f"{datetime.now():%H:%M:%S} {rows:>9,} rows, {attempt} run: {json.dumps(result)}", flush=True)
    smallest = min(sizes)
    home = work / "home-dp"
    home.mkdir()
    dp_log = work / "log-dp.txt"
    dp = run_once(work / f"rows-{smallest}.jsonl", home, dp_log, "--set", "num_processes=2")
    text = dp_log.read_text(encoding="utf-8", errors="replace")
    prepared_lines = len(re.findall(r"\[rank \d\] INFO llm_trainer.prepared: Training rows prepared: ", text))
    reused_lines = len(re.findall(r"\[rank \d\] INFO llm_trainer.prepared: Training rows reused", text))
    print(f"{datetime.now():%H:%M:%S} {smallest:,} rows, num_processes=2: {json.dumps(dp)}; ranks that prepared: "
          f"{prepared_lines}, reused: {reused_lines}", flush=True)  # fmt: skip

    print("\n| rows | run | validate s | prepare s | 5 steps s | evaluate s | wall s | peak RSS GiB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for rows, (first, second) in results.items():
        for name, r in (("first", first), ("second", second)):
            cells = [
                f"{r.get(k, float('nan')):.1f}" for k in ("validate", "prepare", "train_5_steps", "evaluate", "wall")
            ]
            print(
                f"| {rows:,} | {name} ({r.get('prepared', '?')}) | "
                + " | ".join(cells)
                + f" | {r['peak_rss_gib']:.2f} |"
            )
    largest = max(sizes)
    peak = max(r["peak_rss_gib"] for r in results[largest])
    print(f"\npeak RSS per process at {largest:,} rows: {peak:.2f} GiB (aim <= 3)")
    if 10_000 in results and 1_000_000 in results:
        base = max(r["peak_rss_gib"] for r in results[10_000])
        print(f"RATIO peak_rss_1m_over_10k {peak / base:.3f}")
    first, second = results[largest]
    print(f"RATIO prepare_second_over_first {second['prepare'] / first['prepare']:.3f}")
    if 100_000 in results and 1_000_000 in results:
        print(f"RATIO eval_1m_over_100k {results[1_000_000][0]['evaluate'] / results[100_000][0]['evaluate']:.3f}")
    accounted = all(r.get("accounted") for runs in results.values() for r in runs)
    print(f"CHECK rows_accounted {'ok' if accounted else 'FAILED'}")
    once = prepared_lines == 1 and reused_lines == 1
    counts = f"prepared {prepared_lines}, reused {reused_lines}"
    print(f"CHECK data_parallel_prepared_once {'ok' if once else 'FAILED'} ({counts})")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000])
