"""Tokenizing rows in worker processes, for real-sized data.

Tokenizing a row is Python work on one core (the chat template rendered by jinja, each token's label
from its character offsets), and it is most of validation's and preparation's time on a million rows.
Worker processes share it out: with two workers on two cores validation takes 0.56x and preparation
0.47x the time of one process (docs/performance.md). The fast tokenizer's own batch threads would
parallelize only the encoding, the smaller part. Not `datasets.map(num_proc=...)` either: it forks
its workers (see below) and needs the rows as a `datasets` table; this streams our own table.

Workers are spawned, never forked: validation and preparation run inside Prefect tasks, in a process
with threads (the API client, MLflow's logging) and under torchrun, and a forked copy of such a
process can deadlock on a lock a thread held at the fork. A spawned worker imports transformers and
unpickles the parent's tokenizer (the very object training uses, chat template included) in ~1-3 s,
so a pool is started only from PARALLEL_MIN_ROWS rows; below that one process is faster.

Rows go out in blocks and come back in order, with at most two blocks per worker in flight, so memory
does not grow with the data. Workers ignore Ctrl-C, which reaches the whole process group: the parent
stops the pool, and no worker is interrupted halfway through writing a result to its pipe. They exit
on their own when the parent is gone (a SIGKILLed run leaves no worker behind).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

log = logging.getLogger("llm_trainer.tokens")
PARALLEL_MIN_ROWS = 20_000  # below this the workers' start (~1-3 s) eats most of what they save
MAX_AUTO_PROCESSES = 8  # past this, feeding the workers from one process is the bottleneck
BLOCK_ROWS = 256  # rows per message to a worker: large enough that pickling is a small share

T = TypeVar("T")
R = TypeVar("R")

_tokenizer: Any = None  # in a worker: the parent's tokenizer


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (a container's, a job's)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def processes_for(rows: int, requested: int = 0) -> int:
    """How many processes tokenize `rows` rows: `requested` when set (1: this process alone), else one
    per available core (at most MAX_AUTO_PROCESSES) from PARALLEL_MIN_ROWS rows, else 1."""
    if requested > 0:
        return requested
    if rows < PARALLEL_MIN_ROWS:
        return 1
    return max(1, min(available_cores(), MAX_AUTO_PROCESSES))


class TokenPool:
    """`imap(fn, items)` calls `fn(tokenizer, item)` for each item, in `processes` worker processes
    (or in this one when processes is 1), and yields (item, result) in the items' order.

    Use it as a context manager; the workers stop on leaving it, also on an error or Ctrl-C."""

    def __init__(self, tokenizer: Any, processes: int = 1) -> None:
        self.tokenizer = tokenizer
        self.processes = processes
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> TokenPool:
        if self.processes <= 1:
            return self
        try:
            payload = pickle.dumps(self.tokenizer)
        except Exception as exc:  # a tokenizer class that can't be pickled: tokenize here, more slowly
            log.warning("Tokenizing in one process: the tokenizer can't be sent to worker processes (%s)", exc)
            self.processes = 1
            return self
        self._executor = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(payload, os.getpid()),
        )
        with _main_not_imported_by_workers():  # every worker starts now (one per submit), while it holds
            for _ in range(self.processes):
                self._executor.submit(_started)
        log.info("Tokenizing in %d worker processes", self.processes)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def imap(self, fn: Callable[[Any, T], R], items: Iterable[T]) -> Iterator[tuple[T, R]]:
        if self._executor is None:
            for item in items:
                yield item, fn(self.tokenizer, item)
            return
        in_flight: deque[tuple[list[T], Future]] = deque()
        block: list[T] = []
        for item in items:
            block.append(item)
            if len(block) == BLOCK_ROWS:
                in_flight.append((block, self._executor.submit(_run_block, fn, block)))
                block = []
                if len(in_flight) >= 2 * self.processes:
                    yield from self._collect(in_flight.popleft())
        if block:
            in_flight.append((block, self._executor.submit(_run_block, fn, block)))
        while in_flight:
            yield from self._collect(in_flight.popleft())

    def _collect(self, sent: tuple[list[T], Future]) -> Iterator[tuple[T, R]]:
        block, future = sent
        try:
            results = future.result()
        except BrokenProcessPool as exc:
            from trainer.errors import TokenizerWorkerError

            raise TokenizerWorkerError(
                "a tokenizing worker process died (killed, or out of memory); run again, or set tokenize_processes: 1 "
                "to tokenize in the main process"
            ) from exc
        yield from zip(block, results, strict=True)


@contextmanager
def _main_not_imported_by_workers() -> Iterator[None]:
    """A spawned worker imports the parent's `__main__` first; for `llm-trainer` that is the whole
    CLI (~1 s, and a Ctrl-C then prints a traceback from each worker, before it ignores SIGINT).
    The workers need none of it: while they start, `__main__` does not say where it came from."""
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)


def _started() -> None:
    """Submitted once per worker on entering the pool: makes ProcessPoolExecutor start them all then."""


def _start_worker(payload: bytes, parent_pid: int) -> None:
    global _tokenizer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool (see the module's docstring)
    _tokenizer = pickle.loads(payload)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    """A worker blocks on its queue, whose write end it holds too: it would outlive a killed parent."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _run_block(fn: Callable[[Any, T], R], block: list[T]) -> list[R]:
    return [fn(_tokenizer, item) for item in block]
