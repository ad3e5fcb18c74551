"""Validation in bounded memory gives the same answer as validating everything at once: for any
chunk size, any block size of a streamed JSON Lines file, and rows kept on disk or in a list, the
report (counts, reasons, lines, duplicates and their first copies, notes) and the valid rows are
the same. Rows of every shape the contract knows are mixed in: valid, quarantined, duplicates
across files and chunks, blank lines, broken JSON."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainer.data import readers
from trainer.data.contracts.validate import validate_dataset
from trainer.data.example_table import ExampleTable
from trainer.data.split import eval_sample, split_examples
from trainer.errors import DataUnusableError

ROWS = [
    '{"instruction": "Say hi", "output": "Hi!"}',
    '{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}',
    '{"instruction": "Say hi", "output": ""}',  # blank_content
    '{"instruction": "x", "output": "y"',  # invalid_json
    '{"output": "Hi!", "instruction": "Say hi"}',  # a duplicate of the first row
    '{"messages": [{"role": "assistant", "content": "no user"}]}',  # bad_turn_order
    "",  # a blank line: no row
    '{"prompt": "Capital of France?", "completion": "Paris"}',
    '["not", "an", "object"]',
    '{"text": "plain text in a chat file"}',  # wrong_format
]


def _report(report) -> dict:
    out = dataclasses.asdict(report)
    return {k: v for k, v in out.items() if k not in ("report_path", "quarantine_path")}


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(st.lists(st.integers(0, len(ROWS) - 1), min_size=1, max_size=30), min_size=1, max_size=3),
    chunk=st.integers(1, 12),
    block=st.integers(1, 200),
)
def test_any_chunk_and_block_size_gives_the_same_report_and_rows(tmp_path_factory, files, chunk, block):
    data = tmp_path_factory.mktemp("chunks")
    for n, picks in enumerate(files):
        (data / f"part{n}.jsonl").write_text("\n".join(ROWS[i] for i in picks) + "\n", encoding="utf-8")
    try:
        whole, whole_rows = validate_dataset(data)
    except DataUnusableError as exc:  # a file of text rows beside chat rows: refused the same way
        whole, refused = None, str(exc)
    with pytest.MonkeyPatch.context() as patch:  # every file streamed, in blocks that split lines anywhere
        patch.setattr(readers, "STREAM_BYTES", 0)
        patch.setattr(readers, "BLOCK_BYTES", block)
        table_path = data.parent / f"{data.name}-rows.arrow"
        if whole is None:
            with pytest.raises(DataUnusableError) as raised:
                validate_dataset(data, chunk_rows=chunk, examples_path=table_path)
            assert str(raised.value) == refused and not table_path.exists()
            return
        parts, part_rows = validate_dataset(data, chunk_rows=chunk, examples_path=table_path)
    assert _report(parts) == _report(whole)
    assert isinstance(part_rows, ExampleTable)
    assert list(part_rows) == whole_rows
    assert parts.rows_total == parts.rows_valid + parts.rows_quarantined + parts.rows_duplicate


def test_a_table_passes_as_its_path_and_splits_into_views(tmp_path):
    (tmp_path / "data").mkdir()
    rows = [json.dumps({"instruction": f"Q{i}", "output": f"A{i}"}) for i in range(300)]
    (tmp_path / "data" / "a.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    _, listed = validate_dataset(tmp_path / "data")
    _, table = validate_dataset(tmp_path / "data", examples_path=tmp_path / "rows.arrow", chunk_rows=64)
    assert len(pickle.dumps(table)) < 500  # the path, not the rows
    train_t, held_t = split_examples(table, 0.1, 7)
    train_l, held_l = split_examples(listed, 0.1, 7)
    assert isinstance(train_t, ExampleTable) and list(train_t) == train_l and list(held_t) == held_l
    assert pickle.loads(pickle.dumps(train_t))[5] == train_l[5]
    assert list(eval_sample(train_t, 20, 3)) == list(eval_sample(train_l, 20, 3))
    (tmp_path / "rows.arrow").unlink()
    with pytest.raises(FileNotFoundError, match="validated rows are gone"):
        len(ExampleTable(tmp_path / "rows.arrow"))


def test_a_cut_short_or_changed_rows_file_is_not_intact(tmp_path):
    """A cached validation's rows file that was truncated, altered in place or removed is found out
    before anything reads it (the validate task then validates again)."""
    (tmp_path / "data").mkdir()
    rows = [json.dumps({"instruction": f"Q{i}", "output": f"A{i}"}) for i in range(50)]
    (tmp_path / "data" / "a.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = tmp_path / "rows.arrow"
    _, table = validate_dataset(tmp_path / "data", examples_path=path)
    view = split_examples(table, 0.2, 1)[0]
    restored = pickle.loads(pickle.dumps(view))
    assert table.intact() and restored.intact() and restored.digest == table.digest
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # a full disk, a killed copy
    assert not restored.intact()
    path.write_bytes(whole[:100] + bytes([whole[100] ^ 1]) + whole[101:])  # same size, one bit changed
    assert not restored.intact()
    path.unlink()
    assert not restored.intact()
    path.write_bytes(whole)
    assert restored.intact()
