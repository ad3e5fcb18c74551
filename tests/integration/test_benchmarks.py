"""The benchmark scripts' cheap modes run from the project's environment (the real numbers come
from running them by hand; see docs/performance.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # trains the tiny model or runs the flow


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


def test_estimate_cli_json_has_the_total_for_every_model():
    cli = str(Path(sys.executable).with_name("llm-trainer"))
    result = subprocess.run(
        [cli, "estimate", "--preset", "customer-service-bot", "--json"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "llama-3.1-8b-instruct" and data["tokens_per_step"] == 4 * 2048
    assert data["total_gib"] == data["models"]["llama-3.1-8b-instruct"]["total_gib"] > data["base_weights_gib"] > 5
