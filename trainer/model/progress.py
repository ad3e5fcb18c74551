"""Progress of a long loop over rows (tokenizing, scoring, generating) as log lines: one at least
every 30 s with rows done, rows/s and the time left, and one at the end; nothing for a loop that
finishes sooner. Log lines rather than a bar: these loops also run in Prefect workers and in the
processes of a distributed launch, whose output is a log (training's bar falls back the same way)."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("llm_trainer.progress")
EVERY_SECONDS = 30.0


class RowProgress:
    def __init__(self, what: str, total: int, every: float = EVERY_SECONDS, clock=time.monotonic) -> None:
        self.what, self.total, self.every, self.clock = what, total, every, clock
        self.done = 0
        self.started = self.last = clock()
        self.reported = False

    def advance(self, rows: int = 1) -> None:
        self.done += rows
        now = self.clock()
        if now - self.last >= self.every:
            self.last, self.reported = now, True
            rate = self.done / max(now - self.started, 1e-9)
            left = (self.total - self.done) / rate if rate else float("nan")
            log.info("%s: %d/%d rows, %.1f rows/s, ~%.0fs left", self.what, self.done, self.total, rate, left)

    def finish(self) -> None:
        """The closing line, when the loop was long enough to report along the way."""
        if self.reported:
            took = self.clock() - self.started
            log.info("%s: %d rows in %.0fs (%.1f rows/s)", self.what, self.done, took, self.done / max(took, 1e-9))
