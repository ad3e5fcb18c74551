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


def test_a_sigterm_to_the_test_session_still_stops_what_it_started(tmp_path):
    """A CI runner that gives up sends SIGTERM: the session tears down and sweeps as on Ctrl-C, so no
    server it started outlives it (one was found running two hours after such a run)."""
    import os
    import signal
    from pathlib import Path

    pidfile = tmp_path / "sleeper.pid"
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import pathlib, subprocess, sys, time\n"
        "def test_wait():\n"
        "    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True,\n"
        "                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"    pathlib.Path({str(pidfile)!r}).write_text(str(p.pid))\n"
        "    time.sleep(600)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.housekeeping", "-p", "no:cacheprovider", str(probe)],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline and session.poll() is None, session.communicate()[0]
            time.sleep(0.2)
        sleeper = psutil.Process(int(pidfile.read_text()))
        session.send_signal(signal.SIGTERM)
        output, _ = session.communicate(timeout=60)
        assert "stopped 1 process(es) the tests left running" in output, output
        assert not sleeper.is_running() or sleeper.status() == psutil.STATUS_ZOMBIE
    finally:
        session.kill()
