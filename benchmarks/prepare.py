"""Training rows prepared once: the first attempt tokenizes and stores them, the next maps them.

Synthetic support-chat rows (a user question and an answer of one to five sentences) on the tiny
model's tokenizer; `trainer.train.prepared.prepare` twice on the same rows and settings, in a fresh
folder, as a retry, a resume or the next run on the same data would call it.

    python benchmarks/prepare.py [ROWS] [MODEL_DIR]   # default 100,000 rows, the tiny model (built once)

Last line: `RATIO prepare_second_over_first X` (the aim in the real-sized data issue: <= 0.05).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(rows: int, model_dir: Path | None = None) -> None:
    from trainer.data.formats import Example
    from trainer.model.assets import load_counting_tokenizer
    from trainer.model.tiny import ensure_tiny_model
    from trainer.train.prepared import prepare

    tokenizer_dir = model_dir or ensure_tiny_model()
    tokenizer = load_counting_tokenizer(tokenizer_dir)
    examples = [
        Example(
            f"row-{i}",
            "chat.jsonl",
            i + 1,
            messages=[
                {"role": "user", "content": f"Question {i}: where is my order number {i * 7}?"},
                {"role": "assistant", "content": f"Your order {i * 7} ships on day {i % 30}. " * (1 + i % 5)},
            ],
        )
        for i in range(rows)
    ]
    root = Path(tempfile.mkdtemp(prefix="prepare-bench-"))
    seconds = []
    for attempt in ("first", "second"):
        started = time.perf_counter()
        prepared = prepare(examples, tokenizer, tokenizer_dir, 1024, False, root)
        seconds.append(time.perf_counter() - started)
        what = "reused" if prepared.reused else "prepared"
        print(f"{attempt} attempt: {what} {len(prepared.rows):,} rows in {seconds[-1]:.2f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    print(f"RATIO prepare_second_over_first {seconds[1] / seconds[0]:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
