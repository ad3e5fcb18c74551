"""A time bound on Python work in this thread: a chat template's rendering.

A chat template is a program (Jinja) the data or a model folder brings along; one whose loops never
end would hang `validate`, `tokens` and every run silently. `within(seconds)` raises DeadlineExceeded
in the thread that runs past its deadline, at its next bytecode boundary.

Written by hand because no maintained library does this at a cost per call we can pay a million times:
sys.settrace costs ~4x a real template's rendering (63 -> 277 us per conversation, measured), a timer
thread per call ~50 us to start, SIGALRM only works in the main thread. Here one watchdog thread,
started once, checks the deadlines twice a second and raises in an overdue thread with CPython's
PyThreadState_SetAsyncExc; entering and leaving `within` is a dict write under a lock. It can't stop
a single long C call (`'x' * 10**10`): that ends, then the exception is raised.
"""

from __future__ import annotations

import ctypes
import threading
import time

_CHECK_EVERY = 0.5


class DeadlineExceeded(Exception):
    """Raised in the thread whose `within` block ran past its deadline."""


class _Watchdog:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deadlines: dict[int, float] = {}  # thread ident -> deadline (time.monotonic)
        self.thread: threading.Thread | None = None

    def enter(self, seconds: float) -> int:
        ident = threading.get_ident()
        with self.lock:
            self.deadlines[ident] = time.monotonic() + seconds
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._watch, name="deadline-watchdog", daemon=True)
                self.thread.start()
        return ident

    def leave(self, ident: int) -> None:
        with self.lock:
            fired = self.deadlines.pop(ident, None) is None
        if fired:  # raised by the watchdog just as the work ended: not raised again later, elsewhere
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)

    def _watch(self) -> None:
        while True:
            time.sleep(_CHECK_EVERY)
            now = time.monotonic()
            with self.lock:
                for ident, deadline in list(self.deadlines.items()):
                    if now > deadline:
                        del self.deadlines[ident]  # once: `leave` sees it gone and clears a pending one
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(
                            ctypes.c_ulong(ident), ctypes.py_object(DeadlineExceeded)
                        )


_WATCHDOG = _Watchdog()


class within:  # lower case: read as `with within(10): ...`
    """Run the block with a deadline: DeadlineExceeded in this thread once `seconds` have passed
    (checked every half second). Not nested: an inner block replaces the outer one's deadline.
    Entering and leaving cost ~5 us together (measured: 60 -> 65 us per Llama 3.1 conversation)."""

    __slots__ = ("seconds", "ident")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        self.ident = _WATCHDOG.enter(self.seconds)

    def __exit__(self, *exc_info) -> None:
        _WATCHDOG.leave(self.ident)
