"""Corrupt or incomplete checkpoints and adapters stop a run at once, before any model loads, with one
line naming the file; a full disk under output_dir is one line naming the folder. Real training on
the tiny model, real files, a real 1 MiB tmpfs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.retry import is_transient
from tests.cli import run_process
from tests.conftest import DEMO_DATA
from trainer.config.loading import load_settings
from trainer.data.contracts.validate import validate_dataset
from trainer.errors import CheckpointError, OutOfSpaceError
from trainer.layout import CHECKPOINT_MARKER, CHECKPOINT_STAGING
from trainer.registry.lineage import resolve_artifact
from trainer.train.job import TrainJob
from trainer.train.loop import train

pytestmark = pytest.mark.slow


def _settings(output_dir: Path, *extra: str):
    sets = ["max_steps=2", "save_every_n_iterations=2", "batch_size=4", f"output_dir={output_dir}"]
    return load_settings("demo", None, [*sets, *extra])


@pytest.fixture(scope="module")
def examples():
    _, rows = validate_dataset(DEMO_DATA)
    return rows[:24]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, examples) -> Path:
    out = tmp_path_factory.mktemp("trained")
    train(TrainJob(_settings(out), tiny_model_dir, examples, out), show_progress=False)
    return out


def test_the_marker_records_every_file_and_no_staging_folder_is_left(trained):
    checkpoint = trained / "checkpoints" / "checkpoint-2"
    recorded = json.loads((checkpoint / CHECKPOINT_MARKER).read_text())["files"]
    on_disk = {p.name for p in checkpoint.iterdir() if p.name != CHECKPOINT_MARKER}
    assert set(recorded) == on_disk and {"optimizer.pt", "rng_state.pth", "trainer_state.json"} <= on_disk
    assert recorded["optimizer.pt"]["bytes"] == (checkpoint / "optimizer.pt").stat().st_size
    assert len(recorded["optimizer.pt"]["sha256"]) == 64
    assert not (trained / "checkpoints" / CHECKPOINT_STAGING).exists()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage" * (path.stat().st_size // 8 + 1))


CORRUPTIONS = {
    "adapter_model.safetensors": (_truncate, r"adapter_model.safetensors is \d+ bytes, the completion marker records"),
    "optimizer.pt": (_garbage, r"optimizer.pt is \d+ bytes, the completion marker records"),
    "rng_state.pth": (_truncate, r"rng_state.pth is \d+ bytes, the completion marker records"),
    "trainer_state.json": (lambda p: p.write_text(""), r"trainer_state.json is 0 bytes, the completion marker"),
    CHECKPOINT_MARKER: (lambda p: p.unlink(), r"no completion marker llm_trainer_checkpoint.json"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupt_checkpoint_is_refused_before_loading_naming_the_file(trained, tmp_path, tiny_model_dir, name):
    damage, message = CORRUPTIONS[name]
    copy = tmp_path / "checkpoint-2"
    shutil.copytree(trained / "checkpoints" / "checkpoint-2", copy)
    damage(copy / name)
    settings = _settings(tmp_path / "out")
    # As trained_artifact: the resolve stage refuses it (before any model is loaded).
    with pytest.raises(CheckpointError, match=rf"^trained_artifact: checkpoint {copy}: {message}") as info:
        resolve_artifact(str(copy), settings, tiny_model_dir)
    assert not is_transient(info.value) and "\n" not in str(info.value)
    # As a resume (what a retried train task does): refused before the base model is loaded.
    job = TrainJob(settings, tiny_model_dir, [], tmp_path / "out", resume_from=copy)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {copy}: {message}"):
        train(job, show_progress=False)


def test_the_cli_stops_on_a_corrupt_checkpoint_with_one_line_no_retry_no_traceback(trained, tmp_path, prefect_env):
    copy = tmp_path / "checkpoint-2"
    shutil.copytree(trained / "checkpoints" / "checkpoint-2", copy)
    _garbage(copy / "optimizer.pt")
    sets = ["--set", f"trained_artifact={copy}", "--set", f"output_dir={tmp_path / 'out'}"]
    result = run_process("run", *sets, timeout=900, env=prefect_env)
    output = result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(errors) == 1, output[-3000:]
    assert errors[0].startswith(f"error: trained_artifact: checkpoint {copy}: optimizer.pt is ")
    assert "Traceback" not in output and "Retrying" not in output and "Retries are exhausted" not in output
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_a_corrupt_own_checkpoint_stops_the_retry_and_leftover_staging_is_cleaned(trained, tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    shutil.copytree(trained / "checkpoints", run / "checkpoints")
    leftover = run / "checkpoints" / CHECKPOINT_STAGING / "checkpoint-4"
    leftover.mkdir(parents=True)
    (leftover / "optimizer.pt").write_bytes(b"half")  # what a killed save leaves
    _truncate(run / "checkpoints" / "checkpoint-2" / "rng_state.pth")
    with pytest.raises(CheckpointError, match=r"checkpoint-2: rng_state.pth is \d+ bytes"):
        train(TrainJob(_settings(run), tiny_model_dir, [], run), show_progress=False)
    assert not (run / "checkpoints" / CHECKPOINT_STAGING).exists()


def test_a_warm_start_adapter_must_load(trained, tmp_path, tiny_model_dir):
    adapter = tmp_path / "adapter"
    shutil.copytree(trained / "adapter", adapter)
    assert resolve_artifact(str(adapter), _settings(tmp_path), tiny_model_dir).kind == "adapter"
    _truncate(adapter / "adapter_model.safetensors")
    with pytest.raises(CheckpointError, match=rf"^trained_artifact: adapter {adapter}: adapter_model.safetensors is"):
        resolve_artifact(str(adapter), _settings(tmp_path), tiny_model_dir)


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or 'not permitted'})")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=False)  # never leave a mount behind


def test_a_full_disk_under_output_dir_is_one_line_naming_the_folder(small_disk, tiny_model_dir, examples):
    # The tiny model's first checkpoint (adapter + AdamW state) is about 2 MB: the 1 MiB disk fills.
    with pytest.raises(OutOfSpaceError) as info:
        train(TrainJob(_settings(small_disk), tiny_model_dir, examples, small_disk), show_progress=False)
    message = str(info.value)
    assert message.startswith(f"output_dir: no space left on the device of {small_disk / 'checkpoints'}")
    assert "checkpoint-2" in message and "bytes free" in message and not is_transient(info.value)
    assert not list((small_disk / "checkpoints").glob("checkpoint-*"))
    assert not any((small_disk / "checkpoints" / CHECKPOINT_STAGING).glob("*"))
