"""Loaded at start-up by a test's child process whose PYTHONPATH starts with this folder
(`tests/faults/inject.py: env`). When a `TEST_FAULT_*` variable is set, it patches the trainer
as soon as `trainer.train.hf_trainer` is imported, without importing anything heavy before then."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

TARGET = "trainer.train.hf_trainer"


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds TARGET with the other finders, then runs the fault installer after its module runs."""

    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
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

            install_from_environment()

        loader.exec_module = exec_module
        return spec


if any(os.environ.get(name) for name in ("TEST_FAULT_CRASH_AT_STEP", "TEST_FAULT_CRASH_DURING_SAVE")):
    sys.meta_path.insert(0, _AfterImport())
