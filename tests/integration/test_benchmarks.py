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


def test_prepare_benchmark_reuses_what_it_prepared(tiny_model_dir):
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "prepare.py"), "2000", str(tiny_model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert "first attempt: prepared 2,000 rows" in lines[0] and "second attempt: reused 2,000 rows" in lines[1]
    ratio = float(lines[-1].removeprefix("RATIO prepare_second_over_first "))
    assert 0 < ratio < 1
