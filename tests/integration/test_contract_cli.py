"""`llm-trainer validate` as a user runs it: its table, report and exit codes (in this process;
tests/integration/test_cli.py runs it as a real process once)."""

import json
from pathlib import Path

import pytest

from tests.cli import invoke
from tests.conftest import chat, write_jsonl


def validate(*args, timeout=None):
    return invoke("validate", *args)  # 200 columns: rich wraps tables to 80 when not on a terminal


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_counts_table_report_and_exit_one(tmp_path):
    data = tmp_path / "data"
    write_jsonl(data / "chat" / "a.jsonl", [chat("q1", "a1"), chat("q2", ""), chat("q3", "a3"), "{broken"])
    (data / "b.csv").write_text("instruction,output\nsay hi,hi\nsay bye\n", encoding="utf-8")
    (data / "README.md").write_text("about the data")
    report = tmp_path / "out" / "report.json"
    result = validate(data, "--report", report)
    assert result.returncode == 1, result.stderr
    table = result.stdout
    assert "3/6 rows valid, 3 quarantined" in table
    assert "│ b.csv        │ instruction │    2 │     1 │           1 │ ragged_row ×1" in table, table
    assert "│ chat/a.jsonl │ chat        │    4 │     2 │           2 │ blank_content ×1, invalid_json ×1" in table, (
        table
    )
    assert "chat/a.jsonl:2  blank_content: messages[1].content is empty or whitespace only" in table
    assert "not read: README.md" in table
    saved = json.loads(report.read_text())
    assert (saved["rows_total"], saved["rows_valid"], saved["rows_quarantined"], saved["format"]) == (
        6,
        3,
        3,
        "chat+instruction",
    )
    assert [
        (f["path"], f["format"], f["rows_total"], f["rows_valid"], f["rows_quarantined"]) for f in saved["files"]
    ] == [("b.csv", "instruction", 2, 1, 1), ("chat/a.jsonl", "chat", 4, 2, 2)]
    assert [(q["file"], q["line"], q["reason"]) for q in saved["quarantined"]] == [
        ("b.csv", 3, "ragged_row"),
        ("chat/a.jsonl", 2, "blank_content"),
        ("chat/a.jsonl", 4, "invalid_json"),
    ]
    quarantine = tmp_path / "out" / "report.quarantine.jsonl"
    assert saved["quarantine_path"] == str(quarantine) and len(quarantine.read_text().splitlines()) == 3


def test_all_valid_exits_zero_and_forced_formats_and_mappings(tmp_path):
    data = tmp_path / "data"
    (data).mkdir()
    (data / "qa.csv").write_text("question,answer\nwhat?,this.\nwhy?,because.\n", encoding="utf-8")
    unmapped = validate(data)
    assert unmapped.returncode == 1 and "missing_header" in unmapped.stdout
    mapped = validate(data, "--map", "question=prompt", "--map", "answer=completion")
    assert mapped.returncode == 0, mapped.stdout + mapped.stderr
    assert "2/2 rows valid, 0 quarantined (format prompt_completion" in mapped.stdout
    forced = validate(data, "--map", "question=prompt", "--map", "answer=completion", "--format", "chat")
    assert forced.returncode == 1 and "wrong_format ×2" in forced.stdout


def test_token_check_with_a_local_tokenizer(tmp_path, tokenizer_folder):
    data = tmp_path / "data"
    write_jsonl(data / "d.jsonl", [chat("short", "ok"), chat("long " * 50, "answer " * 50)])
    warned = validate(data, "--max-seq-length", 40, "--model", tokenizer_folder, "--report", tmp_path / "w.json")
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "1 rows over 40 (training leaves them out)" in warned.stdout and "d.jsonl:2 " in warned.stdout
    assert json.loads((tmp_path / "w.json").read_text())["overlong"][0]["line"] == 2
    quarantined = validate(data, "--max-seq-length", 40, "--model", tokenizer_folder, "--overlong", "quarantine")
    assert quarantined.returncode == 1 and "d.jsonl:2  too_many_tokens:" in quarantined.stdout


def test_peers_files_without_a_traceback(tmp_path):
    """A JSON array beside JSON Lines, rows that crashed validation before, and preference data."""
    data = tmp_path / "data"
    write_jsonl(data / "a.jsonl", [chat("q1", "a1")])
    (data / "b.json").write_text(json.dumps([chat("q2", "a2")], indent=2))
    (data / "d.json").write_text(json.dumps([{"prompt": ["a"], "completion": "b"}], indent=2))  # crashed pandas
    trl = {"prompt": [{"role": "user", "content": "q3"}], "completion": [{"role": "assistant", "content": "a3"}]}
    write_jsonl(data / "c.jsonl", [trl])
    mixed = validate(data)
    assert mixed.returncode == 1 and "Traceback" not in mixed.stdout + mixed.stderr, mixed.stdout + mixed.stderr
    assert "3/4 rows valid, 1 quarantined" in mixed.stdout
    assert "d.json:2  wrong_type: 'completion' is a string while the other is a message list" in mixed.stdout
    prefs = tmp_path / "prefs"
    write_jsonl(prefs / "p.jsonl", [{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}])
    refused = validate(prefs)
    assert refused.returncode == 2 and "--map chosen=completion" in one_error_line(refused)
    chosen = validate(prefs, "--map", "chosen=completion")
    assert chosen.returncode == 0 and "1/1 rows valid" in chosen.stdout, chosen.stdout + chosen.stderr


def test_text_windows_from_the_command_line(tmp_path, tokenizer_folder):
    data = tmp_path / "data"
    write_jsonl(data / "t.jsonl", [{"text": "short text"}, {"text": " ".join(f"word{i}" for i in range(300))}])
    no_length = validate(data, "--text-windows")
    assert no_length.returncode == 2 and "--text-windows: needs --max-seq-length" in one_error_line(no_length)
    windows = validate(data, "--max-seq-length", 64, "--model", tokenizer_folder, "--text-windows")
    assert windows.returncode == 0, windows.stdout + windows.stderr
    assert (
        "0 rows over 64" in windows.stdout
        and "note: 1 text row(s) over max_seq_length were split into" in windows.stdout
    )


def _broken_link(data: Path) -> None:
    write_jsonl(data / "ok.jsonl", [chat("q", "a")])
    (data / "gone.jsonl").symlink_to(data / "nowhere.jsonl")


def _link_out(data: Path) -> None:
    write_jsonl(data / "ok.jsonl", [chat("q", "a")])
    (data / "users.jsonl").symlink_to("/etc/passwd")  # its lines would be quoted in the quarantine file


def _folder_link_out(data: Path) -> None:
    write_jsonl(data / "ok.jsonl", [chat("q", "a")])
    outside = data.parent / "outside"
    write_jsonl(outside / "more.jsonl", [chat("q2", "a2")])
    (data / "more").symlink_to(outside, target_is_directory=True)


def _hf_state_out(data: Path) -> None:
    """A `datasets` folder whose state.json names an Arrow file outside the data folder (no link needed)."""
    import datasets

    outside, inside = data.parent / "outside-hf", data / "hf"
    datasets.Dataset.from_list([chat("OUTSIDE-SECRET q", "OUTSIDE-SECRET a")]).save_to_disk(str(outside))
    datasets.Dataset.from_list([chat("q", "a")]).save_to_disk(str(inside))
    state = json.loads((inside / "state.json").read_text())
    state["_data_files"][0]["filename"] = str(next(outside.glob("*.arrow")))
    (inside / "state.json").write_text(json.dumps(state))


def _mixed(data: Path) -> None:
    write_jsonl(data / "a.jsonl", [chat("q", "a")])
    write_jsonl(data / "b.jsonl", [{"text": "plain"}])


def _report_is_a_link(data: Path) -> None:
    write_jsonl(data / "ok.jsonl", [chat("q", "a")])
    (data.parent / "victim.txt").write_text("kept")
    (data.parent / "report.json").symlink_to(data.parent / "victim.txt")  # the report would overwrite it


def _empty_files(data: Path) -> None:
    (data / "a.jsonl").write_text("\n\n")
    (data / "b.csv").write_text("")


@pytest.mark.parametrize(
    "setup, args, needle",
    [
        (None, [], "does not exist"),
        (
            lambda d: (d / "README.md").write_text("x"),
            [],
            "no data files found (*.jsonl, *.json, *.csv, *.parquet, *.jsonl.gz / *.json.gz or a `datasets` "
            "save_to_disk folder; subfolders included) (ignored: README.md)",
        ),
        (_empty_files, [], "the data files hold no rows"),
        (_mixed, [], "mixes formats that train differently (a.jsonl is chat but b.jsonl is text)"),
        (_broken_link, [], "gone.jsonl: unreadable (a broken link)"),
        (_link_out, [], "users.jsonl: a link out of the data folder (to /etc/passwd); links are not followed out of"),
        (_folder_link_out, [], "more: a link out of the data folder (to "),
        (_hf_state_out, [], "which is not a file inside this folder"),
        (
            _mixed,
            ["--format", "csv"],
            "--format: Input should be 'chat', 'sharegpt', 'instruction', 'prompt_completion' or 'text'",
        ),
        (_mixed, ["--map", "question"], "--map 'question': expected SOURCE=TARGET"),
        (_mixed, ["--map", "question=answer"], "--map question: Input should be"),
        (_mixed, ["--report", "DATA/report.json"], "inside the data folder"),
        (_report_is_a_link, ["--report", "DATA/../report.json"], "report.json is a link or not a regular file"),
        (_report_is_a_link, ["--report", "/dev/null"], "/dev/null is a link or not a regular file"),
        (_report_is_a_link, ["--report", ""], "name a file to write the JSON report to"),
        (_report_is_a_link, ["--report", "DATA/.."], "name a file to write the JSON report to"),
        (_mixed, ["--max-seq-length", "64", "--model", "gpt-17"], "--model: unknown architecture 'gpt-17'"),
    ],
    ids=[
        "missing",
        "no-data-files",
        "no-rows",
        "mixed-formats",
        "broken-link",
        "link-out",
        "folder-link-out",
        "hf-state-out",
        "bad-format",
        "bad-map",
        "bad-map-target",
        "report-in-data",
        "report-is-a-link",
        "report-is-a-device",
        "report-empty",
        "report-a-folder",
        "bad-model",
    ],
)
def test_unusable_input_exits_two_with_one_line(tmp_path, setup, args, needle):
    data = tmp_path / "data"
    if setup is not None:
        data.mkdir()
        setup(data)
    result = validate(data, *[str(a).replace("DATA", str(data)) for a in args], timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert needle in one_error_line(result)
    assert "root:" not in result.stdout + result.stderr  # no line of /etc/passwd was read out
    assert "OUTSIDE-SECRET" not in result.stdout + result.stderr
    victim = tmp_path / "victim.txt"
    assert not victim.exists() or victim.read_text() == "kept"
