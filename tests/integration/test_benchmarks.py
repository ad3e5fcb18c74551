"""The benchmark scripts' cheap modes run from the project's environment (the real numbers come
from running them by hand; see docs/performance.md)."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # trains a tiny shape through the pipeline code, in a fresh interpreter


def test_gpu_qlora_dry_run_uses_the_pipeline_code_path():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_qlora.py"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| tiny (dry run) |" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "RATIO dry_run_ok 1"
