"""Each file type's rows: where each row is (line or row number), its exact bytes, and what is not read."""

import gzip
import hashlib
import json
import shutil

import pytest

from trainer.data.files import discover
from trainer.data.readers import ColumnarError, NotRecords, UnreadableData, read_rows
from trainer.data.rows import Row

CHAT = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def _rows(path, **kwargs):
    return [(r.line, r.reason, r.record) for r in read_rows(path, path.parent, **kwargs)]


def test_a_json_array_keeps_each_record_start_line_and_bytes(tmp_path):
    text = (
        '\ufeff[\n  {"text": "one"},\n  {\n    "text": "two"\n  },\n  ["not", "an object"],\n'
        '  {"text": "caf\\u00e9"}\n]\n'
    )
    path = tmp_path / "a.json"
    path.write_text(text, encoding="utf-8")
    rows = read_rows(path, tmp_path)
    assert [(r.line, r.reason) for r in rows] == [(2, None), (3, None), (6, "not_an_object"), (7, None)]
    assert rows[1].raw == b'{\n    "text": "two"\n  }' and rows[1].record == {"text": "two"}
    assert rows[3].record == {"text": "café"}
    assert text.encode("utf-8").count(rows[1].raw) == 1  # the record's exact bytes, to find and restore it


def test_a_broken_json_array_keeps_the_records_before_and_every_byte_after(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'[\n{"text": "ok"},\n{"text": "cut off\n, {"text": "lost?"}]\n')
    rows = read_rows(path, tmp_path)
    assert [(r.line, r.reason) for r in rows] == [(2, None), (3, "invalid_json")]
    assert rows[1].raw == b'{"text": "cut off\n, {"text": "lost?"}]' and "can't be split into records" in rows[1].error
    path.write_bytes(b'[{"text": "ok"}] trailing')
    assert [(r.line, r.reason) for r in read_rows(path, tmp_path)] == [(1, None), (1, "invalid_json")]
    path.write_bytes(b"[]")
    assert read_rows(path, tmp_path) == []


def test_invalid_utf8_quarantines_only_the_array_records_holding_it(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'[{"text": "ok"},\n {"text": "caf\xe9"}]')
    rows = read_rows(path, tmp_path)
    assert [(r.line, r.reason) for r in rows] == [(1, None), (2, "invalid_utf8")]
    assert rows[1].raw == b'{"text": "caf\xe9"}'


def test_json_lines_saved_as_json_and_one_pretty_printed_record(tmp_path):
    path = tmp_path / "lines.json"
    path.write_text(json.dumps(CHAT) + "\n\n" + json.dumps({"text": "x"}) + "\n")
    assert [(line, reason) for line, reason, _ in _rows(path)] == [(1, None), (3, None)]
    path.write_text("\n" + json.dumps(CHAT, indent=2))
    assert _rows(path) == [(2, None, CHAT)]
    path.write_text(json.dumps({"alpaca": {"file_name": "a.json"}, "c4": {"file_name": "c4.jsonl"}}, indent=2))
    with pytest.raises(NotRecords, match="found: alpaca, c4"):
        read_rows(path, tmp_path)


def test_gzip_files_number_lines_in_the_uncompressed_text(tmp_path):
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b'{"text": "one"}\n\n{broken\n'))
    assert [(line, reason) for line, reason, _ in _rows(tmp_path / "a.jsonl.gz")] == [(1, None), (3, "invalid_json")]
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(b'[\n{"text": "one"}\n]'))
    assert _rows(tmp_path / "b.json.gz") == [(2, None, {"text": "one"})]
    (tmp_path / "c.jsonl.gz").write_bytes(b'{"text": "not compressed"}\n')
    with pytest.raises(UnreadableData, match="not a readable gzip file"):
        read_rows(tmp_path / "c.jsonl.gz", tmp_path)


def test_parquet_rows_have_row_numbers_and_nulls_are_missing_values(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]},
        {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]},
    ]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "a.parquet")
    rows = read_rows(tmp_path / "a.parquet", tmp_path, column_mapping={"messages": "conversations"})
    assert [r.line for r in rows] == [1, 2]
    # Arrow gives every turn the union of fields (`weight: null`); a null is a field the turn doesn't have.
    assert rows[1].record == {"conversations": records[1]["messages"]}
    assert json.loads(rows[0].raw) == records[0]
    (tmp_path / "b.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ColumnarError, match="not a readable Parquet file"):
        read_rows(tmp_path / "b.parquet", tmp_path)


def test_a_datasets_folder_is_one_data_source_and_only_a_dicts_train_split_trains(tmp_path):
    import datasets

    datasets.disable_progress_bars()
    data = tmp_path / "data"
    datasets.Dataset.from_list([CHAT, {"messages": CHAT["messages"][:1]}]).save_to_disk(data / "hf")
    splits = {"train": datasets.Dataset.from_list([CHAT]), "test": datasets.Dataset.from_list([CHAT])}
    datasets.DatasetDict(splits).save_to_disk(data / "dict")
    found = discover(data)
    assert [p.relative_to(data).as_posix() for p in found.data] == ["dict/train", "hf"]
    assert [p.relative_to(data).as_posix() for p in found.warnings] == ["dict/test"]
    assert "point eval_data_path at it" in found.warnings[data / "dict" / "test"]
    rows = read_rows(data / "hf", data)
    assert [(r.file, r.line) for r in rows] == [("hf", 1), ("hf", 2)] and rows[0].record == CHAT
    from trainer.data.contracts.intake import fingerprint_path

    datasets.Dataset.from_list([CHAT]).save_to_disk(tmp_path / "other")
    for name in ("hf", "dict/test"):  # the fingerprint covers the folders read, and only them
        before = fingerprint_path(data)
        shutil.rmtree(data / name)
        shutil.copytree(tmp_path / "other", data / name)
        assert (fingerprint_path(data) != before) == (name == "hf")


def test_plain_text_is_data_only_with_the_text_format(tmp_path):
    (tmp_path / "wiki.txt").write_bytes(b"first document\r\n\n  \nsecond \xff document\n")
    (tmp_path / "notes.tsv").write_text("a\tb\n")
    found = discover(tmp_path)
    assert found.data == [] and {p.name for p in found.other} == {"wiki.txt", "notes.tsv"}
    assert "dataset_format: text" in found.warnings[tmp_path / "wiki.txt"] and tmp_path / "notes.tsv" in found.warnings
    assert [p.name for p in discover(tmp_path, text_files=True).data] == ["wiki.txt"]
    rows = read_rows(tmp_path / "wiki.txt", tmp_path)
    assert [(r.line, r.reason, r.record) for r in rows] == [
        (1, None, {"text": "first document"}),
        (4, "invalid_utf8", None),
    ]


def test_the_row_key_is_the_same_canonical_hash_as_before():
    """The held-out split hashes it: a changed key would move rows between train and eval."""
    record = {"messages": [{"role": "user", "content": 'héllo\u2028\x00"\\'}], "id": 7, "n": [1e16, -0.0, 1e-7, 2**70]}
    for value in (record, {**record, "z": None, "t": True, "f": float("nan")}):
        canonical = json.dumps(value, sort_keys=True, ensure_ascii=False)
        assert Row("f", 1, b"", record=value).key == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert Row("f", 1, b"", record=CHAT).key == "6894846e1294c992fdb1d91718591ed88b5a3708061022f71245b5ec3e40d5cd"


def test_gzip_is_expanded_within_a_bound_and_every_member_is_read():
    import gzip
    import io
    import time

    from trainer.data.readers import GZIP_FLOOR_BYTES, UnreadableData, gunzip_bounded

    rows = b'{"text": "one"}\n' * 1000
    assert gunzip_bounded(gzip.compress(rows) + gzip.compress(rows)) == rows + rows  # `cat a.gz b.gz`
    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb") as out:
        for _ in range(GZIP_FLOOR_BYTES // 2**20 + 16):
            out.write(bytes(2**20))
    started = time.monotonic()
    with pytest.raises(UnreadableData, match=r"expands to more than 64 MiB from 0\.\d MiB \(over 100x"):
        gunzip_bounded(bomb.getvalue())
    assert time.monotonic() - started < 10
    with pytest.raises(UnreadableData, match="truncated"):
        gunzip_bounded(gzip.compress(rows)[:-12])


def test_an_integer_too_long_for_python_is_an_invalid_row_not_a_crash(tmp_path):
    huge = "9" * 100_000
    (tmp_path / "a.jsonl").write_text(f'{{"text": "a", "n": {huge}}}\n{{"text": "b"}}\n')
    (tmp_path / "b.json").write_text(f'[{{"text": "a", "n": {huge}}}]')
    lines = read_rows(tmp_path / "a.jsonl", tmp_path)
    assert lines[0].error.startswith("invalid_json: Exceeds the limit (4300 digits)") and lines[1].error is None
    (array,) = read_rows(tmp_path / "b.json", tmp_path)
    assert array.error.startswith("invalid_json: Exceeds the limit (4300 digits)")
