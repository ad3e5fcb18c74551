"""Malformed input, one case per row of a table: the counts, and every quarantined row's file,
line and reason. Real files, real Great Expectations, no mocks.

Each case also checks what holds for every input: rows_total == rows_valid + rows_quarantined,
the quarantine file holds each bad row's original bytes at its 1-based physical line, and the
input files are not modified.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from trainer.data.contracts.validate import validate_dataset
from trainer.errors import DataUnusableError

BOM = b"\xef\xbb\xbf"


def j(obj) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def chat(user="hello", assistant="hi there", system=None) -> dict:
    turns = [{"role": "system", "content": system}] if system else []
    return {"messages": turns + [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def turns(*pairs) -> dict:
    return {"messages": [{"role": r, "content": c} for r, c in pairs]}


GOOD = j(chat("where is my order?", "It ships tomorrow."))
GOOD2 = j(chat("reset my password", "Use the link on the sign-in page."))
INSTR_HEADER = b"instruction,output\n"

# id: (files, expected (total, valid, quarantined), expected {(file, line): reason}, validate_dataset kwargs)
CASES: dict[str, tuple[dict[str, bytes], tuple[int, int, int], dict[tuple[str, int], str], dict]] = {
    # --- reading JSONL
    "broken_json_line": (
        {"a.jsonl": GOOD + b'{"messages": [{"role": "user"\n' + GOOD2},
        (3, 2, 1),
        {("a.jsonl", 2): "invalid_json"},
        {},
    ),
    "truncated_last_line_no_newline": (
        {"a.jsonl": GOOD + b'{"messages": ['},
        (2, 1, 1),
        {("a.jsonl", 2): "invalid_json"},
        {},
    ),
    "utf8_bom": ({"a.jsonl": BOM + GOOD + GOOD2}, (2, 2, 0), {}, {}),
    "utf8_bom_then_bad_row": (
        {"a.jsonl": BOM + GOOD + j(chat("q", ""))},
        (2, 1, 1),
        {("a.jsonl", 2): "blank_content"},
        {},
    ),
    "crlf_line_endings": (
        {"a.jsonl": GOOD.replace(b"\n", b"\r\n") + GOOD2.replace(b"\n", b"\r\n") + b"{oops\r\n"},
        (3, 2, 1),
        {("a.jsonl", 3): "invalid_json"},
        {},
    ),
    "invalid_utf8_bytes": (
        {"a.jsonl": GOOD + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'},
        (2, 1, 1),
        {("a.jsonl", 2): "invalid_utf8"},
        {},
    ),
    "lone_surrogate_escape": (
        {
            "a.jsonl": GOOD
            + b'{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "a"}]}\n'
        },
        (2, 1, 1),
        {("a.jsonl", 2): "invalid_utf8"},
        {},
    ),
    "blank_and_whitespace_lines": (
        {"a.jsonl": b"\n" + GOOD + b"   \t\n\r\n" + j(chat("q", "   "))},
        (2, 1, 1),
        {("a.jsonl", 5): "blank_content"},
        {},
    ),
    "empty_file_beside_data": ({"a.jsonl": GOOD, "empty.jsonl": b"\n\n   \n"}, (1, 1, 0), {}, {}),
    "zero_byte_file_beside_data": ({"a.jsonl": GOOD, "zero.jsonl": b"", "zero.csv": b""}, (1, 1, 0), {}, {}),
    "json_array_not_object": (
        {"a.jsonl": GOOD + b'["user", "assistant"]\n' + b'"just a string"\n'},
        (3, 1, 2),
        {("a.jsonl", 2): "not_an_object", ("a.jsonl", 3): "not_an_object"},
        {},
    ),
    "jsonl_holding_csv": (
        {"a.jsonl": b"instruction,output\nsay hi,hi\n"},
        (2, 0, 2),
        {("a.jsonl", 1): "invalid_json", ("a.jsonl", 2): "invalid_json"},
        {},
    ),
    # --- fields and types
    "missing_content_in_turn": (
        {"a.jsonl": GOOD + j({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]})},
        (2, 1, 1),
        {("a.jsonl", 2): "missing_field"},
        {},
    ),
    "missing_output_instruction": (
        {"a.jsonl": j({"instruction": "a", "output": "b"}) + j({"instruction": "only this"})},
        (2, 1, 1),
        {("a.jsonl", 2): "missing_field"},
        {},
    ),
    "null_content": ({"a.jsonl": GOOD + j(chat("q", None))}, (2, 1, 1), {("a.jsonl", 2): "missing_field"}, {}),
    "null_completion": (
        {"a.jsonl": j({"prompt": "p", "completion": "c"}) + j({"prompt": "p2", "completion": None})},
        (2, 1, 1),
        {("a.jsonl", 2): "missing_field"},
        {},
    ),
    "null_messages": ({"a.jsonl": GOOD + j({"messages": None})}, (2, 1, 1), {("a.jsonl", 2): "missing_field"}, {}),
    "empty_messages_list": ({"a.jsonl": GOOD + j({"messages": []})}, (2, 1, 1), {("a.jsonl", 2): "missing_field"}, {}),
    "empty_content": ({"a.jsonl": GOOD + j(chat("", "a"))}, (2, 1, 1), {("a.jsonl", 2): "blank_content"}, {}),
    "whitespace_only_content": (
        {"a.jsonl": GOOD + j(chat("q", " \t\n "))},
        (2, 1, 1),
        {("a.jsonl", 2): "blank_content"},
        {},
    ),
    "whitespace_only_text": (
        {"a.jsonl": j({"text": "a document"}) + j({"text": "\n\n"})},
        (2, 1, 1),
        {("a.jsonl", 2): "blank_content"},
        {},
    ),
    "content_is_a_number": ({"a.jsonl": GOOD + j(chat("q", 42))}, (2, 1, 1), {("a.jsonl", 2): "wrong_type"}, {}),
    "messages_is_a_string": (
        {"a.jsonl": GOOD + j({"messages": "hello"})},
        (2, 1, 1),
        {("a.jsonl", 2): "wrong_type"},
        {},
    ),
    "turn_is_a_string": (
        {"a.jsonl": GOOD + j({"messages": ["hello", "hi"]})},
        (2, 1, 1),
        {("a.jsonl", 2): "wrong_type"},
        {},
    ),
    "prompt_is_a_list": (
        {"a.jsonl": j({"prompt": "p", "completion": "c"}) + j({"prompt": ["p"], "completion": "c"})},
        (2, 1, 1),
        {("a.jsonl", 2): "wrong_type"},
        {},
    ),
    # --- conversations
    "unknown_role": (
        {"a.jsonl": GOOD + j(turns(("robot", "beep"), ("assistant", "boop")))},
        (2, 1, 1),
        {("a.jsonl", 2): "unknown_role"},
        {},
    ),
    "role_holding_a_comma": (
        {"a.jsonl": GOOD + j(turns(("user,assistant", "sneaky"), ("assistant", "a")))},
        (2, 1, 1),
        {("a.jsonl", 2): "unknown_role"},
        {},
    ),
    "sharegpt_unknown_from": (
        {
            "a.jsonl": j({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})
            + j({"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]})
        },
        (2, 1, 1),
        {("a.jsonl", 2): "unknown_role"},
        {},
    ),
    "no_assistant_turn": (
        {"a.jsonl": GOOD + j(turns(("user", "anyone there?")))},
        (2, 1, 1),
        {("a.jsonl", 2): "no_assistant_turn"},
        {},
    ),
    "two_user_turns_in_a_row_are_merged": (
        {"a.jsonl": GOOD + j(turns(("user", "a"), ("user", "b"), ("assistant", "c")))},
        (2, 2, 0),
        {},
        {},
    ),
    "starts_with_an_assistant_turn": (
        {"a.jsonl": GOOD + j(turns(("assistant", "hello"), ("user", "b"), ("assistant", "c")))},
        (2, 1, 1),
        {("a.jsonl", 2): "bad_turn_order"},
        {},
    ),
    "ends_with_user_turn": (
        {"a.jsonl": GOOD + j(turns(("user", "a"), ("assistant", "b"), ("user", "c")))},
        (2, 1, 1),
        {("a.jsonl", 2): "bad_turn_order"},
        {},
    ),
    "system_turn_not_first": (
        {"a.jsonl": GOOD + j(turns(("user", "a"), ("system", "b"), ("assistant", "c")))},
        (2, 1, 1),
        {("a.jsonl", 2): "bad_turn_order"},
        {},
    ),
    "system_then_alternating_is_valid": (
        {
            "a.jsonl": j(chat("q", "a", system="be brief"))
            + j(turns(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")))
        },
        (2, 2, 0),
        {},
        {},
    ),
    # --- CSV
    "csv_without_header": (
        {"a.csv": b"say hello,hello\nsay bye,bye\n"},
        (2, 0, 2),
        {("a.csv", 1): "missing_header", ("a.csv", 2): "missing_header"},
        {},
    ),
    "csv_ragged_rows": (
        {"a.csv": INSTR_HEADER + b"a,b\nc,d,e\nf\ng,h\n"},
        (4, 2, 2),
        {("a.csv", 3): "ragged_row", ("a.csv", 4): "ragged_row"},
        {},
    ),
    "csv_quoted_newlines": (
        {"a.csv": INSTR_HEADER + b'"line one\nline two",ok\nb,"x\n\ny"\nc,\n'},
        (3, 2, 1),
        {("a.csv", 7): "blank_content"},
        {},
    ),
    "csv_unclosed_quote": (
        {"a.csv": INSTR_HEADER + b'a,b\nc,"never closed\nd,e\n'},
        (2, 1, 1),
        {("a.csv", 3): "invalid_csv"},
        {},
    ),
    "csv_invalid_utf8_record": (
        {"a.csv": INSTR_HEADER + b"a,b\nc,caf\xe9\nd,e\n"},
        (3, 2, 1),
        {("a.csv", 3): "invalid_utf8"},
        {},
    ),
    "csv_bom_and_crlf": (
        {"a.csv": BOM + b"instruction,output\r\na,b\r\nc,\r\n"},
        (2, 1, 1),
        {("a.csv", 3): "blank_content"},
        {},
    ),
    "csv_messages_json_cell": (
        {
            "a.csv": b'messages\n"[{""role"": ""user"", ""content"": ""q""}, {""role"": ""assistant"", ""content"": ""a""}]"\n"[{""role"": ""user""}"\n'  # noqa: E501
        },
        (2, 1, 1),
        {("a.csv", 3): "invalid_json"},
        {},
    ),
    "csv_column_mapping": (
        {"a.csv": b"question,answer\nq1,a1\nq2,\n"},
        (2, 1, 1),
        {("a.csv", 3): "blank_content"},
        {"column_mapping": {"question": "prompt", "answer": "completion"}},
    ),
    # --- size and duplicates
    "csv_long_field_within_bounds": (
        {"a.csv": INSTR_HEADER + b"a," + b"x" * 150_000 + b"\nb,\n"},
        (2, 1, 1),
        {("a.csv", 3): "blank_content"},
        {},
    ),
    "oversize_row": ({"a.jsonl": GOOD + j(chat("q", "x" * 200_001))}, (2, 1, 1), {("a.jsonl", 2): "too_long"}, {}),
    "exact_duplicate_rows": (
        {"a.jsonl": GOOD + GOOD2 + GOOD + GOOD},
        (4, 2, 2),
        {("a.jsonl", 3): "duplicate_row", ("a.jsonl", 4): "duplicate_row"},
        {"duplicate_rows": "quarantine"},
    ),
    "duplicate_with_other_key_order": (
        {"a.jsonl": b'{"prompt": "p", "completion": "c"}\n{"completion": "c", "prompt": "p"}\n'},
        (2, 1, 1),
        {("a.jsonl", 2): "duplicate_row"},
        {"duplicate_rows": "quarantine"},
    ),
    "duplicate_across_files": (
        {"a.jsonl": GOOD, "b/b.jsonl": GOOD2 + GOOD},
        (3, 2, 1),
        {("b/b.jsonl", 2): "duplicate_row"},
        {"duplicate_rows": "quarantine"},
    ),
    "long_integer_ids_are_not_duplicates": (
        {"a.jsonl": b'{"id": 123456789012345678901, "text": "t"}\n{"id": 123456789012345678902, "text": "t"}\n'},
        (2, 2, 0),
        {},
        {},
    ),
    # --- folders and formats
    "nested_folders": (
        {"a.jsonl": GOOD, "sub/deeper/b.jsonl": GOOD2 + b"{\n"},
        (3, 2, 1),
        {("sub/deeper/b.jsonl", 2): "invalid_json"},
        {},
    ),
    "readme_beside_data": (
        {"a.jsonl": GOOD, "README.md": b"# not data\n", "notes.txt": b"{not data"},
        (1, 1, 0),
        {},
        {},
    ),
    "hidden_files_skipped": (
        {"a.jsonl": GOOD, ".hidden.jsonl": b"{broken", ".cache/x.jsonl": b"{broken"},
        (1, 1, 0),
        {},
        {},
    ),
    "unknown_format_row": ({"a.jsonl": GOOD + j({"foo": "bar"})}, (2, 1, 1), {("a.jsonl", 2): "unknown_format"}, {}),
    "other_format_row_in_a_file": (
        {"a.jsonl": GOOD + GOOD2 + j({"text": "plain"})},
        (3, 2, 1),
        {("a.jsonl", 3): "wrong_format"},
        {},
    ),
    "mixed_formats_that_convert_to_chat": (
        {
            "a.jsonl": GOOD,
            "b.csv": INSTR_HEADER + b"a,b\n",
            "c.jsonl": j({"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}]}),
        },
        (3, 3, 0),
        {},
        {},
    ),
    # --- peers' files and row shapes
    "json_array_beside_jsonl": (
        {"a.jsonl": GOOD, "b.json": b"[\n" + GOOD2.strip() + b",\n" + j(chat("q", " ")).strip() + b"\n]\n"},
        (3, 2, 1),
        {("b.json", 3): "blank_content"},
        {},
    ),
    "preference_row_in_a_chat_file": (
        {"a.jsonl": GOOD + GOOD2 + j({"prompt": "p", "chosen": "c", "rejected": "r"})},
        (3, 2, 1),
        {("a.jsonl", 3): "preference_data"},
        {},
    ),
    "kto_label_false": (
        {"a.jsonl": j({**chat("q", "good"), "label": True}) + j({**chat("q", "bad"), "label": False})},
        (2, 1, 1),
        {("a.jsonl", 2): "label_false"},
        {},
    ),
    "every_answer_weight_zero": (
        {
            "a.jsonl": GOOD
            + j({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]})
        },
        (2, 1, 1),
        {("a.jsonl", 2): "not_trained"},
        {},
    ),
    "image_content_part": (
        {
            "a.jsonl": GOOD
            + j(turns(("user", [{"type": "image_url", "image_url": {"url": "x.png"}}]), ("assistant", "a")))
        },
        (2, 1, 1),
        {("a.jsonl", 2): "unsupported_content"},
        {},
    ),
    "tool_result_without_a_call": (
        {"a.jsonl": GOOD + j(turns(("user", "q"), ("tool", "42"), ("assistant", "a")))},
        (2, 1, 1),
        {("a.jsonl", 2): "bad_turn_order"},
        {},
    ),
    "forced_format_mismatch": (
        {"a.jsonl": j({"text": "plain"}) + GOOD},
        (2, 1, 1),
        {("a.jsonl", 1): "wrong_format"},
        {"dataset_format": "chat"},
    ),
}


def _physical_line_offset(data: bytes, line: int) -> int:
    return sum(len(part) + 1 for part in data.split(b"\n")[: line - 1])


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malformed_input(tmp_path, case):
    files, (total, valid, quarantined), reasons, kwargs = CASES[case]
    data = tmp_path / "data"
    for name, content in files.items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(content)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in data.rglob("*") if p.is_file()}

    report, examples = validate_dataset(data, tmp_path / "report", **kwargs)

    got = {(q.file, q.line): q.reason for q in report.quarantined}
    assert (report.rows_total, report.rows_valid, report.rows_quarantined) == (total, valid, quarantined), got
    assert got == reasons, [(q.file, q.line, q.reason, q.detail) for q in report.quarantined]
    assert len(examples) == report.rows_valid
    assert report.rows_total == report.rows_valid + report.rows_quarantined + report.rows_duplicate
    assert sum(f.rows_total for f in report.files) == total
    assert all(q.detail for q in report.quarantined)
    # Nothing lost: each quarantine line holds the row's original bytes at its physical line.
    saved = [json.loads(line) for line in Path(report.quarantine_path).read_text(encoding="utf-8").splitlines()]
    assert len(saved) == quarantined
    for q in saved:
        raw = base64.b64decode(q["raw_base64"]) if q["raw"] is None else q["raw"].encode("utf-8")
        original = files[q["file"]]
        start = _physical_line_offset(original, q["line"])
        assert original[start : start + len(raw)] == raw, q
    # The input is never modified.
    assert before == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in data.rglob("*") if p.is_file()}


def test_there_are_at_least_thirty_malformed_cases():
    assert len(CASES) + len(UNUSABLE) >= 30


def test_case_details_say_where_and_what(tmp_path):
    """Spot-check the detail texts users read."""

    def one(files, **kwargs):
        data = tmp_path / str(len(list(tmp_path.iterdir())))
        for name, content in files.items():
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            (data / name).write_bytes(content)
        return validate_dataset(data, **kwargs)[0]

    assert "the file looks like CSV: rename it to .csv" in one(CASES["jsonl_holding_csv"][0]).quarantined[0].detail
    assert one(CASES["missing_content_in_turn"][0]).quarantined[0].detail == "messages[0].content is missing or null"
    assert (
        one(CASES["content_is_a_number"][0]).quarantined[0].detail
        == "messages[1].content is a number, expected a string or a list of text parts"
    )
    assert "a text row, but the file is chat" in one(CASES["other_format_row_in_a_file"][0]).quarantined[0].detail
    assert "found: foo" in one(CASES["unknown_format_row"][0]).quarantined[0].detail
    assert "3 values for 2 columns" in one(CASES["csv_ragged_rows"][0]).quarantined[0].detail
    assert "never closed" in one(CASES["csv_unclosed_quote"][0]).quarantined[0].detail
    headerless = one(CASES["csv_without_header"][0]).quarantined[0].detail
    assert "add a header row or set column_mapping" in headerless
    assert "rename the file to .jsonl" in one({"a.csv": GOOD}).quarantined[0].detail
    bad_utf8 = one(CASES["invalid_utf8_bytes"][0])
    assert bad_utf8.quarantined[0].raw is None and base64.b64decode(bad_utf8.quarantined[0].raw_base64).endswith(
        b'caf\xe9"}]}'
    )
    readme = one(CASES["readme_beside_data"][0])
    assert readme.ignored_files == ["README.md", "notes.txt"]
    assert readme.warnings == [
        "notes.txt: not read: plain text is read only with dataset_format: text (one document per line)"
    ]
    zero = one(CASES["zero_byte_file_beside_data"][0])
    assert [(f.path, f.rows_total, f.format) for f in zero.files] == [
        ("a.jsonl", 1, "chat"),
        ("zero.csv", 0, None),
        ("zero.jsonl", 0, None),
    ]
    mixed = one(CASES["mixed_formats_that_convert_to_chat"][0])
    assert mixed.format == "chat+instruction+sharegpt" and mixed.trains_as == "chat"
    assert [f.format for f in mixed.files] == ["chat", "instruction", "sharegpt"]


# --- Input that can't be validated at all: DataUnusableError (the CLI's exit code 2) -------------------


def _broken_link(data: Path) -> None:
    (data / "gone.jsonl").symlink_to(data / "missing-target.jsonl")


def _fifo(data: Path) -> None:
    os.mkfifo(data / "pipe.jsonl")


UNUSABLE = {  # id: (what the data folder holds, validate_dataset kwargs, error message pattern)
    "missing_path": (None, {}, "does not exist"),
    "only_non_data_files": ({"README.md": b"# hi"}, {}, r"no data files found .*ignored: README.md"),
    "empty_folder": ({}, {}, r"no data files found \(\*.jsonl, \*.json, \*.csv, \*.parquet"),
    "formats_that_train_differently": (
        {"a.jsonl": GOOD, "b.jsonl": j({"text": "plain"})},
        {},
        r"mixes formats that train differently \(a.jsonl is chat but b.jsonl is text\)",
    ),
    "broken_symlink": (
        {"ok.jsonl": GOOD, "gone.jsonl": Path("missing-target.jsonl")},
        {},
        r"gone.jsonl: unreadable \(a broken link\)",
    ),
    "fifo_named_like_data": (
        {"ok.jsonl": GOOD, "pipe.jsonl": "fifo"},
        {},
        r"pipe.jsonl: unreadable \(not a regular file \(a FIFO\)\)",
    ),
    "unknown_forced_format": ({"a.jsonl": GOOD}, {"dataset_format": "csv"}, "format 'csv': unknown"),
    "preference_file": (
        {"p.jsonl": j({"prompt": "The sky is", "chosen": " blue.", "rejected": " green."})},
        {},
        r"p.jsonl: preference data .* column_mapping: \{chosen: completion\} \(CLI: --map chosen=completion\)",
    ),
    "pretokenized_file": ({"t.jsonl": j({"input_ids": [1, 2], "labels": [1, 2]})}, {}, "pre-tokenized rows"),
    "corrupt_parquet": ({"a.parquet": b"PAR1 nope"}, {}, r"a.parquet: not a readable Parquet file"),
}


@pytest.mark.parametrize("case", list(UNUSABLE), ids=list(UNUSABLE))
def test_unusable_input(tmp_path, case):
    entries, kwargs, message = UNUSABLE[case]
    data = tmp_path / "data"
    if entries is not None:
        data.mkdir()
        for name, content in entries.items():
            if isinstance(content, Path):
                (data / name).symlink_to(data / content)
            elif content == "fifo":
                os.mkfifo(data / name)  # reading it would block: it must be refused without opening
            else:
                (data / name).write_bytes(content)
    with pytest.raises(DataUnusableError, match=message):
        validate_dataset(data, **kwargs)


def test_unreadable_file_by_permissions(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.jsonl").write_bytes(GOOD)
    locked = data / "locked.jsonl"
    locked.write_bytes(GOOD2)
    locked.chmod(0)
    try:
        try:
            locked.read_bytes()
        except PermissionError:
            pass
        else:  # root reads anything: the broken link and FIFO cases above cover unreadable files then
            pytest.skip("running as root: chmod 000 does not stop reads")
        with pytest.raises(
            DataUnusableError, match=r"locked.jsonl: unreadable \(Permission denied\); fix its permissions"
        ):
            validate_dataset(data)
    finally:
        locked.chmod(0o644)


def test_a_folder_named_like_a_data_file_is_walked_into(tmp_path):
    data = tmp_path / "data"
    (data / "x.jsonl").mkdir(parents=True)
    (data / "x.jsonl" / "inner.jsonl").write_bytes(GOOD)
    report, _ = validate_dataset(data)
    assert [f.path for f in report.files] == ["x.jsonl/inner.jsonl"] and report.rows_valid == 1


def test_a_single_file_path_is_validated_alone(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(GOOD + b"{\n")
    (tmp_path / "b.jsonl").write_bytes(b"{\n")
    report, _ = validate_dataset(tmp_path / "a.jsonl")
    assert [f.path for f in report.files] == ["a.jsonl"] and (report.rows_total, report.rows_quarantined) == (2, 1)
    with pytest.raises(DataUnusableError, match="not a data file \\(\\*.jsonl, \\*.json"):
        (tmp_path / "notes.md").write_text("x")
        validate_dataset(tmp_path / "notes.md")
