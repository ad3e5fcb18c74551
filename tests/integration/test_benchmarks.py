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


# A real run's log lines (benchmarks/scale.py, 10,000 rows, first run), paths shortened.
SCALE_LOG = """\
14:09:52.001 | INFO    | prefect - Starting temporary server on http://127.0.0.1:8034
14:09:56.356 | INFO    | Flow run 'foamy-wombat' - Beginning flow run 'foamy-wombat' for flow 'llm-trainer'
14:10:16.015 | INFO    | Task run 'validate-337' - Validated /tmp/rows-10000.jsonl: 10000 rows, 9950 valid, \
0 quarantined, 50 exact duplicates left out, 3 over max_seq_length=512 tokens (format instruction)
14:10:16.097 | INFO    | Task run 'validate-337' - Finished in state Completed()
14:10:19.383 | INFO    | llm_trainer.prepared - Training rows prepared: 8928 rows (3 longer than max_seq_length, \
0 the template can't render left out) in 3.2s (/tmp/home-10000/prepared/2e224fb691c3dfa34668bf6983403f18)
14:10:21.531 | INFO    | Task run 'train-4ae' - Trained 5 steps in 5.4s on cpu: mean train loss 6.3183; adapter
14:10:21.535 | INFO    | Task run 'train-4ae' - Finished in state Completed()
14:10:41.509 | INFO    | Task run 'evaluate-18c' - Finished in state Completed()
"""


def test_scale_benchmark_reads_phases_from_a_run_log_and_writes_the_row_mix(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("scale", REPO / "benchmarks" / "scale.py")
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    got = scale.phases(SCALE_LOG)
    assert got["validate"] == pytest.approx(24.096) and got["evaluate"] == pytest.approx(19.974)
    assert (got["prepared"], got["prepare"], got["train_5_steps"]) == ("prepared", 3.2, pytest.approx(2.2))
    assert (got["rows"], got["accounted"]) == (10000, True)
    scale.write_rows(tmp_path / "rows.jsonl", 1000)
    lines = (tmp_path / "rows.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000 and len(set(lines)) == 995  # every 200th row repeats an earlier one
