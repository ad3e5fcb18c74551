import json

from trainer.data import Example, discover_files, read_rows, split_examples


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
        (1, None), (3, None), (4, "invalid_json"), (5, "not_an_object"), (6, "invalid_utf8"),
    ]
    assert rows[0].record == {"text": "bom line"}
    assert rows[4].raw == b'{"text": "bad \xff byte"}'  # raw bytes kept for the quarantine


def test_csv_records_start_lines_with_quoted_newlines(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('instruction,output\n"a\nmulti-line",x\nb,y\nc\n', encoding="utf-8")
    rows = list(read_rows(path, tmp_path))
    assert [(r.line, r.record) for r in rows[:2]] == [(2, {"instruction": "a\nmulti-line", "output": "x"}), (4, {"instruction": "b", "output": "y"})]
    assert rows[2].line == 5 and rows[2].error.startswith("ragged_row")
    assert rows[0].raw == b'"a\nmulti-line",x'


def test_only_data_files_are_discovered(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.jsonl", "sub/b.csv", "README.md", ".hidden.jsonl"):
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in discover_files(tmp_path)] == ["a.jsonl", "sub/b.csv"]


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
