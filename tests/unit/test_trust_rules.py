"""The rules behind "bad state is never reported as good", each on its own: the finite-metrics gate,
the promotion policy's own guard, one redaction rule for every boundary (log records included), which
process holds a run, and which errors are never retried."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from tasks.retry import ExplainedFailureFilter, is_transient
from trainer.errors import (
    BackupEntryError,
    BackupSpaceError,
    CheckpointError,
    NonFiniteError,
    OutOfSpaceError,
    PipelineError,
)
from trainer.evaluate.report import EvalReport
from trainer.redact import find_secret, install_log_redaction, redact, redact_value
from trainer.registry.promotion import decide
from trainer.registry.runs import process_alive, process_tags
from trainer.stages.register import check_finite
from trainer.train.job import TrainResult
from trainer.train.loop import check_finite_loss


def _trained(loss: float) -> TrainResult:
    return TrainResult("out", "out/adapter", 4, loss, [loss], {}, 1, 2, 3, 0, None, 1.0)


def _report(eval_loss: float) -> EvalReport:
    return EvalReport(eval_rows=4, eval_tokens=40, eval_loss=eval_loss, eval_perplexity=2.0,
                      eval_token_accuracy=0.5, rows_too_long=0)  # fmt: skip


@pytest.mark.parametrize("train_loss, eval_loss, named", [(float("nan"), 3.0, "train_loss nan"),
                                                          (3.0, float("inf"), "eval_loss inf"),
                                                          (3.0, float("nan"), "eval_loss nan")])  # fmt: skip
def test_a_model_with_non_finite_loss_or_metrics_is_not_registered(train_loss, eval_loss, named):
    with pytest.raises(NonFiniteError, match=rf"^not registered: {named} \(training diverged\); the champion stays"):
        check_finite(_trained(train_loss), _report(eval_loss))
    check_finite(_trained(3.0), _report(3.0))  # finite: passes


def test_a_nan_training_loss_stops_training_naming_the_iteration():
    with pytest.raises(NonFiniteError, match=r"^training diverged: the training loss is nan from iteration 6;"):
        check_finite_loss(float("nan"), [4.1, 3.9, float("nan")], logging_steps=2)
    check_finite_loss(3.5, [4.1, 3.9, 3.5], logging_steps=1)


def test_the_policy_never_promotes_a_non_finite_first_version():
    decision = decide("eval_loss", "minimize", 0.0, {"eval_loss": float("nan")}, None, None)
    assert not decision.promote and "never promoted" in decision.reason
    assert decide("eval_loss", "minimize", 0.0, {}, None, None).promote  # no eval rows: the first version still is


@pytest.mark.parametrize(
    "error",
    [
        CheckpointError("checkpoint x: optimizer.pt is 3 bytes"),
        OutOfSpaceError("output_dir: no space left"),
        BackupSpaceError("artifact_backup_save_path: no space left"),
        BackupEntryError("MANIFEST.json entry '../x'"),
        NonFiniteError("training diverged"),
    ],
)
def test_the_new_deterministic_errors_are_never_retried_and_logged_without_traceback(error):
    assert isinstance(error, PipelineError) and not is_transient(error)
    try:
        raise error
    except PipelineError:
        record = logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert ExplainedFailureFilter().filter(record) and record.exc_info is None


def test_one_rule_masks_urls_tokens_signed_urls_and_environment_secrets(monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_PASSWORD", "sentinel-pw-8841")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # not a secret's name: its value stays
    text = (
        "see http://user:pw@host:5000/#/x, hf_abcdefghijklmnopqrstuvwxyzABCDEF12, "
        "s3://b/k?X-Amz-Signature=abc123&versionId=7, key sentinel-pw-8841, AKIAABCDEFGHIJKLMNOP"
    )
    masked = redact(text)
    assert masked == "see http://***@host:5000/#/x, ***, s3://b/k?X-Amz-Signature=***&versionId=7, key ***, ***"
    assert redact("false is not a secret") == "false is not a secret"
    assert redact_value({"a": ["x sentinel-pw-8841"], "n": 3}) == {"a": ["x ***"], "n": 3}  # nested values too
    assert find_secret("desk-abcdefghijklmnopqrstuvwxyz") is None  # "sk-" inside a word is not a key
    assert find_secret("max_new_tokens") is None and find_secret("/data/hf_cache/model") is None


def test_every_log_record_is_redacted_message_and_traceback():
    code = (
        "import logging, sys\n"
        "from trainer.redact import install_log_redaction\n"
        "install_log_redaction()\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.INFO)\n"
        "log = logging.getLogger('x')\n"
        "log.info('tracking at %s', 'http://me:hunter2secret@host')\n"
        "try:\n"
        "    raise ConnectionError('API request to http://me:hunter2secret@host/api failed')\n"
        "except ConnectionError:\n"
        "    log.exception('failed')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "hunter2secret" not in result.stdout + result.stderr
    assert "tracking at http://***@host" in result.stdout and "API request to http://***@host/api" in result.stdout
    install_log_redaction()  # idempotent here too


def test_the_process_holding_a_run_is_recognised_and_a_dead_one_is_not():
    mine = process_tags()
    assert process_alive(mine) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_alive({**mine, "llm_trainer.pid": str(child.pid)}) is False  # exited
    assert process_alive({**mine, "llm_trainer.process_start": "1"}) is False  # the pid now names another process
    assert process_alive({**mine, "llm_trainer.boot_id": "another-boot"}) is False  # rebooted since
    assert process_alive({**mine, "llm_trainer.host": "elsewhere"}) is None  # only its orchestrator can tell
