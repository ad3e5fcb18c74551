"""Child processes we start in their own process group, and stopping a whole group.

The scoring server (`serve`) and torchrun (data-parallel training) start processes of their own
(gunicorn/uvicorn workers, one training process per rank). Each is started in a new session so its
whole tree can be stopped by group: on the way out of a command (a `finally`, Ctrl-C, SIGTERM turned
into KeyboardInterrupt by the CLI) nothing we started keeps running or keeps a port.
"""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(process: subprocess.Popen, grace_seconds: float = 10) -> None:
    """SIGTERM the process's group (the process leads it: `start_new_session=True`), then SIGKILL
    what is left after `grace_seconds`; the leader is reaped."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if not group_alive(process.pid):
            break


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of the group runs as another user: it is there
        return True
    return True
