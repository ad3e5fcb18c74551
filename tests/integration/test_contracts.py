"""Real Great Expectations suites from data_contracts/ on real files."""

import base64
import json

import pytest

from tests.conftest import DEMO_DATA, chat, write_jsonl
from trainer.contracts import DataGateError, DataUnusableError, check_gates, validate_dataset

REPO_CSV = DEMO_DATA.parent / "csv"


def test_bundled_sample_data_is_all_valid_in_both_formats(tmp_path):
    report, examples = validate_dataset(DEMO_DATA, tmp_path / "chat")
    assert report.rows_total == report.rows_valid >= 300 and report.format == "chat"
    csv_report, csv_examples = validate_dataset(REPO_CSV, tmp_path / "csv")
    assert csv_report.rows_total == csv_report.rows_valid == report.rows_total and csv_report.format == "instruction"
    # The same content in both files converts to the same training messages.
    assert [e.messages for e in examples] == [e.messages for e in csv_examples]
    assert report.contract_version == "chat@1.0.0"


def test_bad_rows_are_quarantined_with_file_line_and_reason(tmp_path):
    data = tmp_path / "data"
    write_jsonl(data / "a.jsonl", [
        chat("hello", "hi there"),                                                        # 1 valid
        chat("hello", "   "),                                                             # 2 blank
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]},  # 3
        {"messages": [{"role": "user", "content": "a"}]},                                 # 4 no assistant
        {"messages": [{"role": "robot", "content": "a"}, {"role": "assistant", "content": "b"}]},  # 5 unknown role
        chat("hello", "hi there"),                                                        # 6 duplicate of 1
        {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "b"}]},     # 7 wrong type
        "{not json",                                                                      # 8
        {"foo": "bar"},                                                                   # 9 unknown format
        chat("second", "fine answer"),                                                    # 10 valid
    ])
    (data / "b.jsonl").write_bytes(b'{"messages": [{"role": "user", "content": "\xff"}]}\n')
    report, examples = validate_dataset(data, tmp_path / "report")
    reasons = {(q.file, q.line): q.reason for q in report.quarantined}
    assert reasons == {
        ("a.jsonl", 2): "blank_content",
        ("a.jsonl", 3): "bad_turn_order",
        ("a.jsonl", 4): "no_assistant_turn",
        ("a.jsonl", 5): "unknown_role",
        ("a.jsonl", 6): "duplicate_row",
        ("a.jsonl", 7): "wrong_type",
        ("a.jsonl", 8): "invalid_json",
        ("a.jsonl", 9): "unknown_format",
        ("b.jsonl", 1): "invalid_utf8",
    }
    assert (report.rows_total, report.rows_valid, report.rows_quarantined) == (11, 2, 9)
    assert [e.line for e in examples] == [1, 10]
    # Nothing is lost: the quarantine file holds every bad row's original bytes.
    lines = [json.loads(l) for l in open(report.quarantine_path, encoding="utf-8")]
    assert len(lines) == 9
    binary = next(l for l in lines if l["file"] == "b.jsonl")
    assert base64.b64decode(binary["raw_base64"]) == (data / "b.jsonl").read_bytes().rstrip(b"\n")
    saved = json.loads(open(report.report_path).read())
    assert saved["rows_total"] == 11 and saved["files"][0]["rows_quarantined"] == 8
    with pytest.raises(DataGateError, match=r"9 of 11 rows quarantined .*a.jsonl:2 blank_content.*validation_report.json"):
        check_gates(report, min_valid_rows=1, max_invalid_fraction=0.0)
    check_gates(report, min_valid_rows=2, max_invalid_fraction=0.9)


def test_unusable_inputs(tmp_path):
    with pytest.raises(DataUnusableError, match="does not exist"):
        validate_dataset(tmp_path / "missing")
    (tmp_path / "README.md").write_text("not data")
    with pytest.raises(DataUnusableError, match="no \\*.jsonl or \\*.csv files"):
        validate_dataset(tmp_path)
    write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")])
    write_jsonl(tmp_path / "b.jsonl", [{"text": "plain text row"}])
    with pytest.raises(DataUnusableError, match="mixes formats"):
        validate_dataset(tmp_path)
