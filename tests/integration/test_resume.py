"""Exact resume: a run killed with SIGKILL and resumed equals the uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import REPO
from tests.faults import inject as faults

pytestmark = pytest.mark.slow  # trains the tiny model or runs the flow

TOTAL = 12


def _run(
    output_dir: Path, crash_at: int | None = None, crash_during_save: int | None = None, batching: str = "auto"
) -> subprocess.CompletedProcess:
    # One thread: multi-threaded CPU reductions may sum in a different order from run to run, and
    # AdamW turns such 1e-9 noise on near-zero gradients into lr-sized steps. Exactness is about
    # the resume, so the arithmetic itself must be repeatable.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env = faults.env(env, crash_at=crash_at or 0, mode="kill", during_save=crash_during_save or 0)
    return subprocess.run(
        [sys.executable, str(REPO / "tests/integration/train_worker.py"), str(output_dir), str(TOTAL), "42", batching],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("uninterrupted")
    result = _run(out)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


# 5: killed between saves (resume from 3); 9: killed on a save step before the save (resume from 6),
# after the epoch boundary at 6; "save-6": killed while checkpoint-6 was being written (resume from 3).
@pytest.mark.parametrize("kill_at, resume_step", [(5, 3), (9, 6), ("save-6", 3)])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, uninterrupted, kill_at, resume_step):
    crash = {"crash_during_save": int(kill_at[5:])} if isinstance(kill_at, str) else {"crash_at": kill_at}
    killed = _run(tmp_path, **crash)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "adapter").exists()
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    assert checkpoints[-1] == f"checkpoint-{resume_step}"  # a half-written checkpoint never looks complete
    resumed = _run(tmp_path, **crash)  # each crash fires once per folder; this run resumes
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    info = json.loads((tmp_path / "losses.json").read_text())
    assert info["resumed_from"].endswith(f"checkpoint-{resume_step}")

    reference = load_file(uninterrupted / "adapter" / "adapter_model.safetensors")
    final = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert reference.keys() == final.keys()
    assert max((reference[k] - final[k]).abs().max().item() for k in reference) <= 1e-6

    expected = json.loads((uninterrupted / "losses.json").read_text())["losses"]
    after = {step: loss for step, loss in info["losses"].items() if int(step) > resume_step}
    assert sorted(after, key=int) == [str(s) for s in range(resume_step + 1, TOTAL + 1)]
    for step, loss in after.items():
        assert loss == pytest.approx(expected[step], abs=1e-6), step


def test_packed_batches_resume_exactly(tmp_path):
    """The default on the CPU is length-grouped batches (tested above); packed batches (the CUDA
    default) resume exactly too."""
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    assert _run(reference, batching="packed").returncode == 0
    assert _run(crashed, crash_at=5, batching="packed").returncode == -signal.SIGKILL
    assert _run(crashed, crash_at=5, batching="packed").returncode == 0
    expected = load_file(reference / "adapter" / "adapter_model.safetensors")
    final = load_file(crashed / "adapter" / "adapter_model.safetensors")
    assert max((expected[k] - final[k]).abs().max().item() for k in expected) <= 1e-6
    assert json.loads((crashed / "losses.json").read_text())["resumed_from"].endswith("checkpoint-3")
