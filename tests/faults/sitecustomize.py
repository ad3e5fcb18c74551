"""Loaded at start-up by a test's child process whose PYTHONPATH starts with this folder
(`tests/faults/inject.py: env`). When `TEST_FAULT_*` variables are set, it installs the fault as soon
as the module it patches (the trainer, or the function a signal is sent in) is imported, without
importing anything heavy before then."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

# The modules whose import installs a fault (tests/faults/inject.py: install_from_environment).
_SIGNAL = os.environ.get("TEST_FAULT_SIGNAL")
TARGETS = set()
if (
    os.environ.get("TEST_FAULT_CRASH_AT_STEP")
    or os.environ.get("TEST_FAULT_CRASH_DURING_SAVE")
    or (_SIGNAL and os.environ.get("TEST_FAULT_SIGNAL_AT_STEP"))
):
    TARGETS.add("trainer.train.hf_trainer")
if _SIGNAL and os.environ.get("TEST_FAULT_SIGNAL_IN"):
    TARGETS.add(os.environ["TEST_FAULT_SIGNAL_IN"].split(":", 1)[0])


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds a TARGETS module with the other finders, then runs the fault installer after it runs."""

    def find_spec(self, name, path=None, target=None):
        if name not in TARGETS:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            if repo not in sys.path:
                sys.path.append(repo)
            from tests.faults.inject import install_from_environment

            install_from_environment(name)

        loader.exec_module = exec_module
        return spec


if TARGETS:
    sys.meta_path.insert(0, _AfterImport())
