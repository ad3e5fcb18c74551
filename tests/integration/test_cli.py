"""The `llm-trainer` command as a user runs it: exit codes and messages.

The installed script runs as a real process where that is the point (help, one bad setting, the
validate exit codes, a run that stops before loading a model, a deterministic task error); the other
cases run in this process (tests/cli.py)."""

import json

import pytest

from tests.cli import invoke, run_process
from tests.conftest import DEMO_DATA, chat, write_jsonl


def cli(*args, timeout=120, env=None):
    return run_process(*args, timeout=timeout, env=env)


def test_help_lists_the_commands():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("run", "validate", "presets", "models"):
        assert command in result.stdout


def test_presets_and_models_tables():
    presets = invoke("presets")
    assert presets.returncode == 0 and "customer-service-bot" in presets.stdout and "legal-document" in presets.stdout
    models = invoke("models")
    assert (
        models.returncode == 0 and "meta-llama/Llama-3.1-8B-Instruct" in models.stdout and "tiny-llama" in models.stdout
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--set", "colour=blue"], "unknown setting 'colour'"),
        (["--set", "learning_rate=-1"], "learning_rate"),
        (["--set", "batch_size=0"], "batch_size"),
        (["--set", "quantization_rank=3"], "quantization_rank: must be 2, 4, 8 or none"),
        (["--set", "training_data_path=/no/such/dir"], "training_data_path: /no/such/dir does not exist"),
        (["--set", "base_model_architecture=gpt-17"], "base_model_architecture"),
        (["--preset", "customer-service-bot"], "training_data_path: required"),
        (["--config", "MALFORMED"], "malformed YAML"),
    ],
)
def test_bad_settings_exit_nonzero_with_one_line(tmp_path, args, needle):
    if "MALFORMED" in args:
        bad = tmp_path / "bad.yaml"
        bad.write_text("learning_rate: [1e-4\n")
        args = [str(bad) if a == "MALFORMED" else a for a in args]
    # The first case as the installed script (a fresh interpreter, its real exit code), the rest in-process.
    result = cli("run", *args, timeout=60) if args == ["--preset", "nope"] else invoke("run", *args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_exit_codes_and_report(tmp_path):
    report = tmp_path / "out" / "report.json"
    good = cli("validate", str(DEMO_DATA), "--report", str(report))
    assert good.returncode == 0, good.stderr
    saved = json.loads(report.read_text())
    assert saved["rows_total"] == saved["rows_valid"] > 300 and saved["rows_quarantined"] == 0
    assert saved["files"][0]["path"] == "conversations.jsonl"

    bad = tmp_path / "bad"
    write_jsonl(bad / "d.jsonl", [chat("q", "a"), chat("q2", " ")])
    result = cli("validate", str(bad), "--report", str(tmp_path / "bad.json"))
    assert result.returncode == 1
    assert json.loads((tmp_path / "bad.json").read_text())["quarantined"][0] == {
        "file": "d.jsonl",
        "line": 2,
        "reason": "blank_content",
        "detail": "messages[1].content is empty or whitespace only",
        "raw": json.dumps(chat("q2", " ")),
        "raw_base64": None,
    }
    missing = cli("validate", str(tmp_path / "missing"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr


def test_run_stops_before_loading_a_model_on_bad_data(tmp_path, tiny_model_dir, prefect_env):
    data = tmp_path / "data"
    write_jsonl(data / "d.jsonl", [chat(f"question {i}", f"answer {i}") for i in range(20)] + [chat("q", "")])
    result = cli(
        "run",
        "--set",
        f"training_data_path={data}",
        "--set",
        f"output_dir={tmp_path / 'out'}",
        timeout=300,
        env=prefect_env,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    last = errors[0]
    assert last.startswith("error: training_data_path: 1 of 21 rows quarantined") and "d.jsonl:21 blank_content" in last
    assert str(tmp_path / "out" / "data" / "validation_report.json") in last
    assert "Training on" not in result.stderr and not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.slow
def test_a_missing_trained_artifact_fails_at_once_with_one_line(tmp_path, tiny_model_dir, prefect_env):
    """A deterministic error in a task: one `error:` line, no traceback, no retry, within seconds of
    the resolve task starting (it used to wait 5 s and 30 s for two retries first)."""
    import re
    from datetime import datetime

    missing = tmp_path / "no-such-checkpoint"
    result = cli(
        "run",
        "--set",
        f"trained_artifact={missing}",
        "--set",
        f"output_dir={tmp_path / 'out'}",
        timeout=600,
        env=prefect_env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: trained_artifact: {missing} does not exist; give a checkpoint or adapter folder, "
                      "models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/model"], output  # fmt: skip
    assert "Traceback" not in output and "Retrying" not in output and "Retries are exhausted" not in output

    def when(pattern: str) -> datetime:
        line = next(line for line in output.splitlines() if re.search(pattern, line))
        return datetime.strptime(line.split(" | ")[0].strip(), "%H:%M:%S.%f")

    started = when(r"Task run 'validate-\w+' - Finished in state Completed")
    failed = when(r"Task run 'resolve-\w+' - Finished in state Failed")
    assert (failed - started).total_seconds() < 5
    assert not (tmp_path / "out" / "checkpoints").exists()
