"""Data-contract throughput: validating 100,000 chat rows (~50 MB of JSONL; a tenth with text parts and
weights, a twentieth with tool calls), in rows per second.

Target (issue 12): at least 20,000 rows/s, i.e. under 5 s, with the row shapes of peers' files
(content parts, weights, tool calls) checked. Cases, all on data generated into a temporary folder:

- baseline: read the files and `json.loads` every line (the part no validator can skip), same run;
- validate: `validate_dataset` in-process (Great Expectations imported before the clock starts),
  median of --repeats runs; the RATIO line is this case's rows/s over 20,000;
- validate, 5 % bad rows: the same with every 20th row broken (blank answers, broken JSON,
  duplicates, bad turn order), so the quarantine path is timed too;
- CLI: `llm-trainer validate FOLDER` end to end, imports included, once.

    .venv/bin/python benchmarks/validate.py [--rows 100000] [--repeats 3] [--no-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = [
    "order",
    "refund",
    "card",
    "account",
    "password",
    "reset",
    "device",
    "shipping",
    "delivery",
    "update",
    "invoice",
    "plan",
    "subscription",
    "tracking",
    "return",
    "label",
    "warranty",
    "screen",
    "battery",
    "charger",
    "login",
    "email",
    "address",
    "payment",
    "receipt",
    "store",
]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]


def _row(rng: random.Random, i: int) -> dict:
    messages = [{"role": "system", "content": "You are a helpful, concise support agent."}] if i % 3 == 0 else []
    for turn in range(1 if i % 4 else 2):
        messages.append({"role": "user", "content": f"#{i}.{turn} " + _sentence(rng, rng.randint(6, 20))})
        messages.append({"role": "assistant", "content": _sentence(rng, rng.randint(14, 44))})
    if i % 10 == 5:  # a tenth in the shapes of OpenAI files: text parts and a weight
        messages[-1] = {
            "role": "assistant",
            "content": [{"type": "text", "text": messages[-1]["content"]}],
            "weight": 1,
        }
    if i % 20 == 7:  # a twentieth calls a tool first
        call = {"id": f"call_{i}", "type": "function", "function": {"name": "lookup_order", "arguments": '{"id": 1}'}}
        messages[-1:-1] = [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": '{"status": "shipped"}'},
        ]
        return {"messages": messages, "tools": TOOLS}
    return {"messages": messages}


def _broken(rng: random.Random, i: int, previous: str) -> str:
    kind = (i // 20) % 4
    if kind == 0:
        return json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]})
    if kind == 1:
        return '{"messages": [{"role": "user", "content": "cut off'
    if kind == 2:
        return previous  # an exact duplicate
    return json.dumps(  # ends with a user turn: no answer to learn from
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ]
        }
    )


def generate(folder: Path, rows: int, bad_every: int = 0, files: int = 4) -> int:
    """`rows` chat rows over `files` JSONL files (one in a subfolder); returns the bytes written."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-rows // files)
    written, previous = 0, ""
    for f in range(files):
        path = folder / ("nested" if f == files - 1 else "") / f"part-{f}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(f * per_file, min(rows, (f + 1) * per_file)):
            line = json.dumps(_row(rng, i))
            if bad_every and i % bad_every == bad_every - 1:
                line = _broken(rng, i, previous)
            lines.append(line)
            previous = line
        data = ("\n".join(lines) + "\n").encode("utf-8")
        path.write_bytes(data)
        written += len(data)
    return written


def baseline(folder: Path) -> float:
    start = time.perf_counter()
    for path in sorted(folder.rglob("*.jsonl")):
        for line in path.read_bytes().split(b"\n"):
            if line:
                json.loads(line)
    return time.perf_counter() - start


def timed_validate(folder: Path, repeats: int):
    """(median wall seconds, median CPU seconds of this process, the last report)."""
    from trainer.data.contracts.validate import validate_dataset

    walls, cpus, report = [], [], None
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        report, _ = validate_dataset(folder)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end CLI case")
    args = parser.parse_args()

    import great_expectations  # noqa: F401 - imported before the clock starts (about 2.7 s, once per process)

    with tempfile.TemporaryDirectory(prefix="llm-trainer-bench-") as tmp:
        clean, dirty = Path(tmp) / "clean", Path(tmp) / "dirty"
        size = generate(clean, args.rows)
        generate(dirty, args.rows, bad_every=20)
        load = f"; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
        print(
            f"{args.rows:,} chat rows, {size / 1e6:.1f} MB in 4 JSONL files; {os.cpu_count()} CPUs{load}; python "
            f"{sys.version.split()[0]}"
        )
        print(f"{'case':38s} {'wall s':>8s} {'CPU s':>7s} {'rows/s':>10s} {'target':>14s}")

        base = baseline(clean)
        print(f"{'baseline: read + json.loads only':38s} {base:8.2f} {'':>7s} {args.rows / base:10,.0f}")
        seconds, cpu, report = timed_validate(clean, args.repeats)
        assert report.rows_total == report.rows_valid == args.rows, (report.rows_total, report.rows_valid)
        rate = args.rows / seconds
        print(
            f"{'validate (in-process, median)':38s} {seconds:8.2f} {cpu:7.2f} {rate:10,.0f} {'>= 20,000/s':>14s} "
            f"{'ok' if rate >= 20_000 else 'SLOW'}"
        )
        dirty_seconds, dirty_cpu, dirty_report = timed_validate(dirty, args.repeats)
        assert dirty_report.rows_total == args.rows and dirty_report.rows_quarantined == args.rows // 20, (
            dirty_report.reason_counts()
        )
        print(
            f"{'validate, 5 % bad rows (median)':38s} {dirty_seconds:8.2f} {dirty_cpu:7.2f} "
            f"{args.rows / dirty_seconds:10,.0f}   "
            f"{dict(dirty_report.reason_counts())}"
        )
        if not args.no_cli:
            cli = str(Path(sys.executable).with_name("llm-trainer"))
            start = time.perf_counter()
            done = subprocess.run([cli, "validate", str(clean)], capture_output=True, text=True)
            cli_seconds = time.perf_counter() - start
            assert done.returncode == 0, done.stderr
            print(
                f"{'CLI end to end (imports included)':38s} {cli_seconds:8.2f} {'':>7s} "
                f"{args.rows / cli_seconds:10,.0f} {'< 10 s':>14s} "
                f"{'ok' if cli_seconds < 10 else 'SLOW'}"
            )
        print(f"validate costs {seconds / base:.1f}x the bare JSON parse")
    print(f"RATIO validate_rows_per_s_over_20k {rate / 20_000:.2f}")


if __name__ == "__main__":
    main()
