"""Every command ends with one `error:` line, never a traceback (flows/cli/app.py: OneLineErrors): a
bug's traceback goes to a file under the state folder that the line names; an OSError names its file;
typer's own exits (--help, usage errors) pass through untouched."""

from __future__ import annotations

import pytest

from tests.cli import invoke


@pytest.fixture
def broken_models(monkeypatch):
    """`llm-trainer models` made to fail as a bug or the disk would."""
    import flows.cli.catalog as catalog

    def install(error: BaseException) -> None:
        def raise_it(*args, **kwargs):
            raise error

        monkeypatch.setattr(catalog, "print_table", raise_it)

    return install


def test_a_bug_is_one_line_naming_the_file_that_keeps_its_traceback(broken_models, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_TRAINER_HOME", str(tmp_path / "state"))
    broken_models(RuntimeError("boom with http://user:hunter2@host/x\nsecond line"))
    result = invoke("models")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: unexpected RuntimeError: boom with http://***@host/x (a bug; its traceback: ")
    [kept] = (tmp_path / "state" / "logs").glob("error-*.txt")
    assert lines[0].endswith(f"{kept})") and "Traceback" not in result.stderr
    text = kept.read_text()
    assert "Traceback (most recent call last)" in text and "raise_it" in text and "hunter2" not in text


def test_an_os_error_names_its_file(broken_models):
    broken_models(PermissionError(13, "Permission denied", "/some/file"))
    result = invoke("models")
    assert (result.returncode, result.stderr.strip()) == (1, "error: /some/file: Permission denied")


def test_a_worker_process_that_died_is_one_line_and_not_called_a_bug(broken_models):
    from trainer.errors import TokenizerWorkerError

    broken_models(TokenizerWorkerError("a tokenizing worker process died (killed, or out of memory); run again"))
    result = invoke("models")
    assert (result.returncode, result.stderr.strip()) == (
        1,
        "error: a tokenizing worker process died (killed, or out of memory); run again",
    )


def test_help_is_typers_own_and_a_usage_error_is_one_line():
    assert invoke("models", "--help").returncode == 0
    for args, needle in [
        (["models", "--no-such-option"], "No such option: --no-such-option"),
        (["tokens", ".", "--rows", "0"], "Invalid value for '--rows'"),
        (["validate", ".", "--bogus"], "No such option: --bogus"),
    ]:
        usage = invoke(*args)
        lines = usage.stderr.strip().splitlines()
        assert usage.returncode == 2 and len(lines) == 1, usage.stderr
        assert lines[0].startswith("error: ") and needle in lines[0] and "unexpected" not in lines[0], lines[0]
