"""The session's own housekeeping (tests/housekeeping.py): a process a test starts stays within
reach even when its parent exits and it runs in a session of its own, as `mlflow server`'s job
runners and a killed CLI's Prefect server do; the end-of-session sweep stops it."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from tests.housekeeping import _descendants, stop_descendants


def test_an_orphan_in_its_own_session_is_still_ours_and_the_sweep_stops_it():
    # The middle process starts a sleeper in a new session and exits at once: the sleeper is orphaned.
    starter = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(p.pid)"
    )
    orphan_pid = int(subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, timeout=60).stdout)
    orphan = psutil.Process(orphan_pid)
    try:
        deadline = time.monotonic() + 10
        while orphan_pid not in {p.pid for p in _descendants()} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert orphan_pid in {p.pid for p in _descendants()}, "the orphan was not re-parented to the test session"
        assert orphan.ppid() != 1
        stopped = stop_descendants(grace=5, only={orphan_pid})
        assert len(stopped) == 1 and str(orphan_pid) in stopped[0]
        assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
    finally:
        if orphan.is_running():
            orphan.kill()
