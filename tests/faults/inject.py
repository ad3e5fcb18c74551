"""Fault injection for tests, kept out of the product: `trainer/` has no crash hooks of its own.

Two faults, each once per output folder (a marker file records that it fired, so the resumed or
retried run goes through):
- crash at step N: after iteration N, raise a `TransientError` (the train task's retry policy
  retries it, as it would a crashed worker) or SIGKILL this process (a hard crash);
- crash during save N: SIGKILL halfway through writing checkpoint N (files staged, not yet sealed
  and renamed into place).
And signals from outside at a chosen moment (once per process):
- signal at step N: after iteration N, send a signal to a process group (a server the run talks
  to: "the tracking server dies mid-training") or to this process (0);
- signal in `module:function` on its Nth call: this process gets the signal as that call starts
  (SIGTERM during registration, during the backup's copy).

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
VARIABLES = (
    "TEST_FAULT_CRASH_AT_STEP", "TEST_FAULT_CRASH_MODE", "TEST_FAULT_CRASH_DURING_SAVE",
    "TEST_FAULT_SIGNAL", "TEST_FAULT_SIGNAL_AT_STEP", "TEST_FAULT_SIGNAL_GROUP", "TEST_FAULT_SIGNAL_IN",
    "TEST_FAULT_SIGNAL_CALL",
)  # fmt: skip
TRAINER_MODULE = "trainer.train.hf_trainer"


def env(
    base: dict[str, str],
    crash_at: int = 0,
    mode: str = "raise",
    during_save: int = 0,
    signal_name: str = "",
    signal_at: int = 0,
    signal_group: int = 0,
    signal_in: str = "",
    signal_call: int = 1,
) -> dict[str, str]:
    """`base` with the fault described for a child process and this folder first on its PYTHONPATH.
    `signal_name` ("TERM", "KILL", ...) with `signal_at` (a step; to `signal_group`, 0 = the process
    itself) or `signal_in` ("module:function", on its `signal_call`th call, to the process itself)."""
    out = {k: v for k, v in base.items() if k not in VARIABLES}
    paths = [str(FAULTS_DIR), *filter(None, out.get("PYTHONPATH", "").split(os.pathsep))]
    out["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    if crash_at:
        out.update(TEST_FAULT_CRASH_AT_STEP=str(crash_at), TEST_FAULT_CRASH_MODE=mode)
    if during_save:
        out["TEST_FAULT_CRASH_DURING_SAVE"] = str(during_save)
    if signal_name:
        out["TEST_FAULT_SIGNAL"] = signal_name
        if signal_at:
            out.update(TEST_FAULT_SIGNAL_AT_STEP=str(signal_at), TEST_FAULT_SIGNAL_GROUP=str(signal_group))
        if signal_in:
            out.update(TEST_FAULT_SIGNAL_IN=signal_in, TEST_FAULT_SIGNAL_CALL=str(signal_call))
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


def signal_callback(step: int, group: int, sig: signal.Signals):
    """A TrainerCallback that sends `sig` to process group `group` (0: this process) after iteration
    `step`, once per process (rank 0 only, under torchrun)."""
    from transformers import TrainerCallback

    class SignalAtStep(TrainerCallback):
        sent = False

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step != step or self.sent or not state.is_world_process_zero:
                return
            self.sent = True
            if group:
                os.killpg(group, sig)
            else:
                os.kill(os.getpid(), sig)

    return SignalAtStep()


def signal_in(patch, target: str, call: int, sig: signal.Signals) -> None:
    """This process gets `sig` as the `call`th call of `target` ("module:function") starts."""
    import functools
    import importlib

    module_name, function_name = target.split(":", 1)
    module = importlib.import_module(module_name)
    original = getattr(module, function_name)
    calls = 0

    @functools.wraps(original)
    def signalled(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == call:
            os.kill(os.getpid(), sig)
        return original(*args, **kwargs)

    patch.setattr(module, function_name, signalled)


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


def install_from_environment(module: str) -> None:
    """Called by sitecustomize once `module` (one of `patched_modules`) is imported in a child process."""
    sig = getattr(signal, "SIG" + os.environ.get("TEST_FAULT_SIGNAL", "TERM"))
    if module == TRAINER_MODULE:
        install(
            _Patcher,
            crash_at=int(os.environ.get("TEST_FAULT_CRASH_AT_STEP", "0") or 0),
            mode=os.environ.get("TEST_FAULT_CRASH_MODE", "raise"),
            during_save=int(os.environ.get("TEST_FAULT_CRASH_DURING_SAVE", "0") or 0),
        )
        step = int(os.environ.get("TEST_FAULT_SIGNAL_AT_STEP", "0") or 0)
        if step and os.environ.get("TEST_FAULT_SIGNAL"):
            from trainer.train.hf_trainer import PipelineTrainer

            original_init = PipelineTrainer.__init__
            group = int(os.environ.get("TEST_FAULT_SIGNAL_GROUP", "0") or 0)

            def init(self, *args, **kwargs):
                original_init(self, *args, **kwargs)
                self.add_callback(signal_callback(step, group, sig))

            PipelineTrainer.__init__ = init
    target = os.environ.get("TEST_FAULT_SIGNAL_IN", "")
    if target.split(":", 1)[0] == module and os.environ.get("TEST_FAULT_SIGNAL"):
        signal_in(_Patcher, target, int(os.environ.get("TEST_FAULT_SIGNAL_CALL", "1") or 1), sig)
