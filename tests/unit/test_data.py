import json

from trainer.data.files import discover
from trainer.data.formats import Example
from trainer.data.readers import read_rows
from trainer.data.split import split_examples


def test_jsonl_lines_are_physical_and_one_based(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"text": "bom line"}\r\n'  # BOM + CRLF
        b"\n"  # blank line: not a row
        b'{"text": "ok"}\n'
        b"{broken\n"
        b'["a list"]\n'
        b'{"text": "bad \xff byte"}\n'
    )
    rows = list(read_rows(path, tmp_path))
    assert [(r.line, r.error and r.error.split(":")[0]) for r in rows] == [
        (1, None),
        (3, None),
        (4, "invalid_json"),
        (5, "not_an_object"),
        (6, "invalid_utf8"),
    ]
    assert rows[0].record == {"text": "bom line"}
    assert rows[4].raw == b'{"text": "bad \xff byte"}'  # raw bytes kept for the quarantine


def test_csv_records_start_lines_with_quoted_newlines(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('instruction,output\n"a\nmulti-line",x\nb,y\nc\n', encoding="utf-8")
    rows = list(read_rows(path, tmp_path))
    assert [(r.line, r.record) for r in rows[:2]] == [
        (2, {"instruction": "a\nmulti-line", "output": "x"}),
        (4, {"instruction": "b", "output": "y"}),
    ]
    assert rows[2].line == 5 and rows[2].error.startswith("ragged_row")
    assert rows[0].raw == b'"a\nmulti-line",x'


def test_only_data_files_are_discovered(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.jsonl", "sub/b.csv", "README.md", ".hidden.jsonl"):
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path)[0]] == ["a.jsonl", "sub/b.csv"]


def _examples(n, prefix="row"):
    return [Example(key=json.dumps([prefix, i]), file="f", line=i, text=f"{prefix} {i}") for i in range(n)]


def test_split_is_stable_when_rows_are_added():
    rows = _examples(500)
    train, held_out = split_examples(rows, 0.1, seed=42)
    assert 25 < len(held_out) < 80 and len(train) + len(held_out) == 500
    train2, held_out2 = split_examples(rows + _examples(300, "new"), 0.1, seed=42)
    assert {e.key for e in held_out} <= {e.key for e in held_out2}
    assert {e.key for e in train} <= {e.key for e in train2}
    _, other_seed = split_examples(rows, 0.1, seed=7)
    assert {e.key for e in other_seed} != {e.key for e in held_out}


def test_a_row_has_the_format_it_has_most_fields_of_and_a_file_the_format_most_rows_have():
    from trainer.data.formats import decide_file_format, detect_format

    assert detect_format({"messages": []}) == "chat" and detect_format({"conversations": []}) == "sharegpt"
    assert detect_format({"output": "x"}) == "instruction"  # missing instruction: still an instruction row
    assert detect_format({"prompt": "p", "completion": "c", "text": "t"}) == "prompt_completion"
    assert detect_format({"id": 1, "foo": 2}) is None
    assert decide_file_format(["text", "chat", "chat", None]) == "chat"
    assert decide_file_format(["text", "chat"]) == "text"  # a tie goes to the format seen first
    assert decide_file_format([None, None]) is None


def test_column_mapping_renames_before_detection():
    from trainer.data.rows import apply_column_mapping

    mapping = {"question": "prompt", "answer": "completion"}
    assert apply_column_mapping({"question": "q", "answer": "a", "id": 1}, mapping) == {
        "id": 1,
        "prompt": "q",
        "completion": "a",
    }
    assert apply_column_mapping({"question": "q", "prompt": "old"}, mapping) == {"prompt": "q"}  # the mapped field wins
    record = {"prompt": "p"}
    assert apply_column_mapping(record, mapping) is record  # nothing to rename: no copy


def test_fingerprint_depends_on_paths_and_bytes_not_order():
    from trainer.data.files import dataset_fingerprint, file_digest

    a, b = file_digest(b"one"), file_digest(b"two")
    assert dataset_fingerprint({"x.jsonl": a, "sub/y.jsonl": b}) == dataset_fingerprint(
        {"sub/y.jsonl": b, "x.jsonl": a}
    )
    assert dataset_fingerprint({"x.jsonl": a, "sub/y.jsonl": b}) != dataset_fingerprint({"x.jsonl": a, "y.jsonl": b})
    assert dataset_fingerprint({"x.jsonl": a, "y.jsonl": b}) != dataset_fingerprint({"x.jsonl": b, "y.jsonl": a})


def test_json_parsing_matches_the_standard_library():
    from trainer.data.rows import parse_json_line

    # orjson would read these integers as equal floats; the standard library keeps them exact.
    assert parse_json_line(b'{"id": 123456789012345678901}')[0] == {"id": 123456789012345678901}
    assert parse_json_line(b'{"x": NaN}')[1] is None  # json.loads accepts NaN, so do we
    assert parse_json_line(b'{"x": "\\ud800"}')[1].startswith("invalid_utf8")
    assert parse_json_line(b'{"x": 1')[1].startswith("invalid_json")
    assert parse_json_line(b"\xff")[1].startswith("invalid_utf8")


def test_csv_bom_crlf_and_per_record_utf8(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b'\xef\xbb\xbfprompt,completion\r\np1,c1\r\np2,c\xff2\r\n\r\np3,"multi\r\nline"\r\n')
    rows = read_rows(path, tmp_path)
    assert [(r.line, r.reason) for r in rows] == [(2, None), (3, "invalid_utf8"), (5, None)]
    assert rows[0].record == {"prompt": "p1", "completion": "c1"}
    assert rows[1].raw == b"p2,c\xff2" and rows[2].record["completion"] == "multi\r\nline"


def test_discovery_skips_hidden_folders_and_survives_link_loops(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.jsonl").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.JSONL").write_text("{}")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)
    (tmp_path / "notes.md").write_text("x")
    from trainer.data.files import discover

    data, other, warnings = discover(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in data] == ["sub/a.JSONL"]
    assert [p.name for p in other] == ["notes.md"] and warnings == {}
