"""Fault injection for tests, kept out of the product: `trainer/` has no crash hooks of its own.

Two faults, each once per output folder (a marker file records that it fired, so the resumed or
retried run goes through):
- crash at step N: after iteration N, raise a `TransientError` (the train task's retry policy
  retries it, as it would a crashed worker) or SIGKILL this process (a hard crash);
- crash during save N: SIGKILL halfway through writing checkpoint N (files staged, not yet sealed
  and renamed into place).

In-process, a test calls `install(...)` through pytest's monkeypatch. A subprocess (the CLI, a
train worker, torchrun's workers) loads it through `tests/faults/sitecustomize.py`: put that
folder on the child's PYTHONPATH and describe the fault in `TEST_FAULT_*` variables (`env(...)`).
Only this test folder reads those variables.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

FAULTS_DIR = Path(__file__).resolve().parent
VARIABLES = ("TEST_FAULT_CRASH_AT_STEP", "TEST_FAULT_CRASH_MODE", "TEST_FAULT_CRASH_DURING_SAVE")


def env(base: dict[str, str], crash_at: int = 0, mode: str = "raise", during_save: int = 0) -> dict[str, str]:
    """`base` with the fault described for a child process and this folder first on its PYTHONPATH."""
    out = {k: v for k, v in base.items() if k not in VARIABLES}
    paths = [str(FAULTS_DIR), *filter(None, out.get("PYTHONPATH", "").split(os.pathsep))]
    out["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    if crash_at:
        out.update(TEST_FAULT_CRASH_AT_STEP=str(crash_at), TEST_FAULT_CRASH_MODE=mode)
    if during_save:
        out["TEST_FAULT_CRASH_DURING_SAVE"] = str(during_save)
    return out


def _once(marker: Path) -> bool:
    """True the first time for this marker (and writes it), False after."""
    if marker.exists():
        return False
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("fault injected here once, on purpose (tests/faults)")
    return True


def crash_callback(step: int, mode: str):
    """A TrainerCallback that ends training after iteration `step`, once per output folder."""
    from transformers import TrainerCallback

    from trainer.errors import TransientError

    class CrashAtStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step != step:  # every rank raises (torchrun then ends the job)
                return
            # The output folder is the checkpoints folder's parent (trainer/layout.py).
            if not _once(Path(args.output_dir).parent / f".crashed-at-step-{step}"):
                return
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise TransientError(f"simulated crash at step {step} (tests/faults)")

    return CrashAtStep()


def install(patch, crash_at: int = 0, mode: str = "raise", during_save: int = 0) -> None:
    """Patch `PipelineTrainer` through `patch.setattr` (pytest's monkeypatch, or `_Patcher`)."""
    from trainer.train.hf_trainer import PipelineTrainer

    if crash_at:
        original_init = PipelineTrainer.__init__

        def init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            self.add_callback(crash_callback(crash_at, mode))

        patch.setattr(PipelineTrainer, "__init__", init)
    if during_save:
        original_seal = PipelineTrainer._seal

        def seal(self, staged: Path) -> None:
            # Staged files are written; the marker, the settings and the rename are not.
            if self.state.global_step == during_save and _once(
                Path(self.args.output_dir).parent / f".crashed-during-save-{during_save}"
            ):
                os.kill(os.getpid(), signal.SIGKILL)
            original_seal(self, staged)

        patch.setattr(PipelineTrainer, "_seal", seal)


class _Patcher:
    """monkeypatch's `setattr` for a process that lives only as long as its fault."""

    @staticmethod
    def setattr(owner, name, value) -> None:
        setattr(owner, name, value)


def install_from_environment() -> None:
    """Called by sitecustomize once `trainer.train.hf_trainer` is imported in a child process."""
    install(
        _Patcher,
        crash_at=int(os.environ.get("TEST_FAULT_CRASH_AT_STEP", "0") or 0),
        mode=os.environ.get("TEST_FAULT_CRASH_MODE", "raise"),
        during_save=int(os.environ.get("TEST_FAULT_CRASH_DURING_SAVE", "0") or 0),
    )
