"""The one retry policy every task uses: transient failures are retried, everything else fails at once.

Transient: I/O and network errors (a flaky disk or object store, a server that does not answer),
MLflow's "try again" answers, SQLite's "database is locked", and `TransientError` (a crashed
training worker, whose retry resumes from the latest checkpoint). Deterministic, never retried:
bad settings, bad data, corrupt inputs (a truncated checkpoint, a garbage file), a full disk, a
missing file, out-of-memory, and any error this policy does not know, which would most likely fail
the same way again. Retrying a deterministic error only delays the one line that says what to fix.
"""

from __future__ import annotations

import errno
import functools
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from trainer.errors import PipelineError, TransientError

# OSErrors that say something about this machine's files, not a passing condition.
DETERMINISTIC_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
    errno.ENAMETOOLONG, errno.EEXIST, errno.ENOTEMPTY, errno.EFBIG,
}  # fmt: skip
# MLflow error codes a server answers with when trying again may help, and the words of MLflow's
# client when the server did not answer at all (it raises INTERNAL_ERROR for those and for real
# bugs alike, so the code alone can't tell).
TRANSIENT_MLFLOW_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED"}
UNREACHABLE_WORDS = ("api request to", "max retries exceeded", "connection", "timed out", "database is locked")


def is_transient(exc: BaseException) -> bool:
    """True when trying again may succeed (see the module's docstring)."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, (PipelineError, MemoryError)) or "out of memory" in str(exc).lower():
        return False
    if isinstance(exc, OSError):
        return exc.errno not in DETERMINISTIC_ERRNOS
    if isinstance(exc, sqlite3.OperationalError) or type(exc).__name__ == "OperationalError":
        return "database is locked" in str(exc)
    if type(exc).__name__ == "MlflowException":
        message = str(exc).lower()
        return getattr(exc, "error_code", "") in TRANSIENT_MLFLOW_CODES or any(w in message for w in UNREACHABLE_WORDS)
    if _is_http_transport_error(exc):
        return True
    cause = exc.__cause__
    return cause is not None and cause is not exc and is_transient(cause)


def _is_http_transport_error(exc: BaseException) -> bool:
    import httpx  # a dependency of prefect: always there when a task runs

    return isinstance(exc, httpx.TransportError)


def retry_transient(task, task_run, state) -> bool:
    """Prefect retry condition: re-raise the task's exception and ask `is_transient`."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


def transient_retries(*delays: float) -> dict[str, Any]:
    """`@task(**transient_retries(5, 30))`: retried after each delay, on transient errors only."""
    return {"retries": len(delays), "retry_delay_seconds": list(delays), "retry_condition_fn": retry_transient}


def pipeline_task(name: str, *delays: float, **task_options: Any) -> Callable[[Callable], Any]:
    """`@pipeline_task("train", 10, 60)`: a Prefect task retried by this policy after each delay
    (Prefect's result caching off unless `task_options` say otherwise), whose MLflow server that did
    not answer is its one line (TrackingUnavailableError, not retried: the client already waited)."""
    from prefect import task
    from prefect.cache_policies import NONE

    from trainer.registry.client import unreachable

    def decorate(fn: Callable) -> Any:
        @functools.wraps(fn)
        def explained(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                error = unreachable(exc)
                if error is None or error is exc:
                    raise
                raise error from exc

        options = {**transient_retries(*delays), **task_options}
        if "cache_key_fn" not in options:
            options.setdefault("cache_policy", NONE)
        return task(name=name, **options)(explained)

    return decorate


class ExplainedFailureFilter(logging.Filter):
    """Prefect logs every failed task and flow run with its traceback. For a `PipelineError` the
    message already says what is wrong and where, so its traceback is dropped: the log keeps one
    line, and the terminal ends with the CLI's one `error:` line instead of pages of frames."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PipelineError):
            record.exc_info, record.exc_text = None, None
        return True


def install_log_filter() -> None:
    """Attach ExplainedFailureFilter to the loggers Prefect's engines report failures on (once)."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, ExplainedFailureFilter) for f in logger.filters):
            logger.addFilter(ExplainedFailureFilter())
