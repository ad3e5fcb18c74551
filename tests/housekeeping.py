"""Session housekeeping, loaded by tests/conftest.py as a pytest plugin:

- **Nothing left behind.** The pytest process becomes a child subreaper (Linux `prctl`), so every
  process a test starts stays its descendant even after its parent dies (a Prefect server whose
  CLI was killed, `mlflow server`'s job runners started in their own session). When the session
  ends — passed, failed or timed out — every descendant still running is terminated, then killed,
  and the summary names them.
- **No state left behind.** The session's state folder (`register_for_cleanup`) is removed when
  the session passed, and kept, with its path printed, when it failed.
- **The budget in sight.** The summary ends with the time of each tier (unit, integration, e2e) and
  of the session set-up built outside the tests' timeouts.

Under pytest-xdist (`make test` runs two worker sessions, one test file at a time each) every worker
is a session of its own (its own state folder, Prefect server and tiny model) and does all of the
above for itself, then hands what it found to the controller, whose summary reports it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
from collections import defaultdict
from pathlib import Path

import pytest

PR_SET_CHILD_SUBREAPER = 36
SETUP_TIMES = pytest.StashKey[dict]()  # name -> seconds of the session set-up (tests/conftest.py)
_tier_seconds: dict[str, float] = defaultdict(float)
_killed: list[str] = []
_cleanup: list[Path] = []
_kept: list[Path] = []


def register_for_cleanup(path: Path) -> None:
    _cleanup.append(path)


def pytest_configure(config):
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # SIGTERM (a CI runner giving up, `kill`) ends the session like Ctrl-C: pytest then tears the
    # fixtures down and the sweep below runs. Python's default would end the process on the spot and
    # leave every server the session started running.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)


def _interrupt(signum, frame) -> None:
    signal.signal(signum, signal.SIG_IGN)  # once: the teardown itself must not be cut short
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def pytest_runtest_logreport(report):
    parts = report.nodeid.split("/")
    tier = parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"
    _tier_seconds[tier] += report.duration


def _descendants():
    import psutil

    try:
        return [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


def stop_descendants(grace: float = 10.0, only: set[int] | None = None) -> list[str]:
    """Terminate, then kill, every process this one started that is still running (or those of them
    whose pid is in `only`); their pids and command lines."""
    import psutil

    alive = [p for p in _descendants() if only is None or p.pid in only]
    names = []
    for process in alive:
        with contextlib.suppress(psutil.Error):
            names.append(f"{process.pid} {' '.join(process.cmdline()[:4])[:120]}")
            process.terminate()
    _, alive = psutil.wait_procs(alive, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)
    if only is None:  # at the end of the session: reap what was re-parented to us
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
    else:
        for process in alive:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(process.pid, os.WNOHANG)
    return names


def pytest_unconfigure(config):
    # After every session fixture's teardown: what is still running now was left behind.
    _killed.extend(stop_descendants())


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    # trylast: after pytest's own sessionfinish has torn the session fixtures down, and before the
    # terminal summary is written; pytest_unconfigure sweeps once more for late ones.
    _killed.extend(stop_descendants())
    for path in _cleanup:
        if exitstatus == 0:
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            _kept.append(path)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: what it found goes to the controller's summary
        workeroutput["housekeeping"] = {
            "killed": _killed,
            "kept": [str(p) for p in _kept],
            "setup": session.config.stash.get(SETUP_TIMES, {}),
        }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist's controller: a worker's session ended; its set-up times, kept folders, left processes."""
    found = getattr(node, "workeroutput", {}).get("housekeeping", {})
    _killed.extend(found.get("killed", []))
    _kept.extend(Path(p) for p in found.get("kept", []))
    setup = node.config.stash.setdefault(SETUP_TIMES, {})
    for name, seconds in found.get("setup", {}).items():
        setup[name] = max(setup.get(name, 0.0), seconds)  # the workers build them at the same time


@pytest.hookimpl(trylast=True)  # after the durations table, just above pytest's last line
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    setup = config.stash.get(SETUP_TIMES, {})
    tiers = ", ".join(f"{tier} {seconds:.0f} s" for tier, seconds in sorted(_tier_seconds.items())) or "no test ran"
    built = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in setup.items()) or "nothing"
    terminalreporter.write_line(f"time by tier: {tiers}; session set-up (outside timeouts): {built}")
    for path in _kept:
        terminalreporter.write_line(f"kept the session's state for inspection: {path}")
    if _killed:
        terminalreporter.write_line(f"stopped {len(_killed)} process(es) the tests left running:", yellow=True)
        for name in _killed:
            terminalreporter.write_line(f"  {name}", yellow=True)
