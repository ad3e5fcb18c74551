"""Tokenizing in worker processes against one process: validation's token step and preparing the
training rows, on the same rows in the same run, and the results compared.

Alpaca-shaped rows with the long-tailed length mix of benchmarks/scale.py, on the tiny model's
tokenizer: `validate_dataset` with `tokenize_processes=1` then `0` (one worker per core from 20,000
rows), then `prepare` the valid rows the same two ways, each in a fresh folder.

    python benchmarks/tokenize_processes.py [ROWS]   # default 100,000

Prints the seconds of each, `RATIO validate_workers_over_one X`, `RATIO prepare_workers_over_one X`
(below 1 is faster; two cores: about 0.6), and `CHECK same_result ok` when the reports are equal and
the prepared rows files have the same sha256.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(rows: int) -> None:
    from benchmarks.scale import write_rows
    from trainer.data.contracts.validate import validate_dataset
    from trainer.data.files import stream_digest
    from trainer.model.assets import load_counting_tokenizer
    from trainer.model.tiny import ensure_tiny_model
    from trainer.model.token_pool import processes_for
    from trainer.train.prepared import ROWS_FILE, prepare

    work = Path(tempfile.mkdtemp(prefix="tokenize-bench-"))
    (work / "data").mkdir()
    write_rows(work / "data" / "rows.jsonl", rows)
    tokenizer_dir = ensure_tiny_model()
    tokenizer = load_counting_tokenizer(tokenizer_dir)
    workers = processes_for(rows)
    print(f"{rows:,} rows; workers when not told: {workers}", flush=True)

    reports, seconds, examples = [], {}, None
    for processes in (1, 0):
        started = time.perf_counter()
        report, examples = validate_dataset(
            work / "data", tokenizer=tokenizer, max_seq_length=1024, tokenize_processes=processes
        )
        seconds[("validate", processes)] = time.perf_counter() - started
        reports.append({k: v for k, v in dataclasses.asdict(report).items() if not k.endswith("_path")})
        print(f"validate, tokenize_processes={processes}: {seconds[('validate', processes)]:.1f} s", flush=True)
    digests = []
    for processes in (1, 0):
        root = work / f"prepared-{processes}"
        started = time.perf_counter()
        prepared = prepare(examples, tokenizer, tokenizer_dir, 1024, False, root, processes)
        seconds[("prepare", processes)] = time.perf_counter() - started
        digests.append(stream_digest(root / prepared.key / ROWS_FILE)[0])
        print(f"prepare, tokenize_processes={processes}: {seconds[('prepare', processes)]:.1f} s", flush=True)

    for stage in ("validate", "prepare"):
        print(f"RATIO {stage}_workers_over_one {seconds[(stage, 0)] / seconds[(stage, 1)]:.3f}")
    same = reports[0] == reports[1] and digests[0] == digests[1]
    print(f"CHECK same_result {'ok' if same else 'FAILED'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
