"""Evaluation within a budget: a seeded sample of the held-out rows (eval_max_rows), and progress
lines on long loops over rows."""

from __future__ import annotations

import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.data.formats import Example
from trainer.data.split import eval_sample
from trainer.model.progress import RowProgress


def _rows(n: int, offset: int = 0) -> list[Example]:
    return [Example(f"key-{i}", "rows.jsonl", i, text=f"row {i}") for i in range(offset, offset + n)]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(0, 300), cap=st.one_of(st.none(), st.integers(1, 200)), seed=st.integers(0, 2**32 - 1))
def test_the_sample_is_bounded_seeded_and_a_subset_in_order(n, cap, seed):
    rows = _rows(n)
    chosen = eval_sample(rows, cap, seed)
    assert len(chosen) == (n if cap is None else min(n, cap))
    assert chosen == eval_sample(list(rows), cap, seed)  # the same rows every time (every model, every run)
    positions = [rows.index(e) for e in chosen]
    assert positions == sorted(positions)  # a subset, in the held-out order


def test_the_sample_does_not_depend_on_row_order():
    rows = _rows(50)
    assert {e.key for e in eval_sample(rows, 10, 7)} == {e.key for e in eval_sample(rows[::-1], 10, 7)}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_logged_at_least_every_30_seconds_and_says_time_left(caplog):
    clock = _Clock()
    progress = RowProgress("scoring", 100, clock=clock)
    with caplog.at_level(logging.INFO, logger="llm_trainer.progress"):
        for _ in range(100):
            clock.now += 1.0  # 1 row/s: a line at 30, 60 and 90 s
            progress.advance()
        progress.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == [
        "scoring: 30/100 rows, 1.0 rows/s, ~70s left",
        "scoring: 60/100 rows, 1.0 rows/s, ~40s left",
        "scoring: 90/100 rows, 1.0 rows/s, ~10s left",
    ]
    assert lines[3] == "scoring: 100 rows in 100s (1.0 rows/s)" and len(lines) == 4


def test_a_short_loop_prints_nothing(caplog):
    progress = RowProgress("generating", 3)
    with caplog.at_level(logging.INFO, logger="llm_trainer.progress"):
        for _ in range(3):
            progress.advance()
        progress.finish()
    assert caplog.records == []
