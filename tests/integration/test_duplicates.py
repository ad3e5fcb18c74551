"""Exact duplicate rows (duplicate_rows): dropped by default (the first copy trained once, the others
reported with file and line, not counted as invalid), quarantined, or kept. Nothing is lost under any
policy: rows_total == valid + quarantined + dropped duplicates, whatever the mix of rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli import invoke
from trainer.data.contracts.report import check_gates
from trainer.data.contracts.validate import validate_dataset

FULL = Path(__file__).resolve().parents[1] / "fixtures" / "datasets" / "llamafactory" / "full"

ROWS = [
    {"instruction": "Say hi", "output": "Hi!"},
    {"instruction": "Say bye", "output": "Bye!"},
    {"output": "Hi!", "instruction": "Say hi"},  # the first row, keys in another order: a duplicate
    {"instruction": "Say hi", "output": ""},  # quarantined (blank output), and so are its copies
    {"instruction": "Count", "input": "1 2", "output": "3"},
]


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.integers(0, len(ROWS) - 1), min_size=1, max_size=25))
def test_every_row_is_valid_quarantined_or_a_reported_duplicate(tmp_path_factory, picks):
    data = tmp_path_factory.mktemp("dups")
    lines = [json.dumps(ROWS[i]) for i in picks]
    (data / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    distinct_good = {frozenset(ROWS[i].items()) for i in picks if i != 3}
    for policy in ("drop", "quarantine", "keep"):
        report, examples = validate_dataset(data, duplicate_rows=policy)
        assert report.rows_total == report.rows_valid + report.rows_quarantined + report.rows_duplicate == len(picks)
        assert len(examples) == report.rows_valid
        blank = sum(1 for i in picks if i == 3)
        if policy == "drop":
            assert report.rows_valid == len(distinct_good) and report.rows_quarantined == blank
            assert len({e.key for e in examples}) == len(examples)  # each content trained once
            for d in report.duplicates:  # each names its first copy, which is trained
                assert (d.first_file, d.first_line) in {(e.file, e.line) for e in examples}
                assert d.line > d.first_line
        elif policy == "quarantine":
            assert report.rows_valid == len(distinct_good) and report.rows_duplicate == 0
        else:
            assert report.rows_valid == len(picks) - blank and report.rows_duplicate == 0


@pytest.mark.parametrize(
    "name, rows, duplicates, note",
    [
        ("alpaca_zh_demo.json", 1000, 8, None),
        # 2 rows write the tool call as text in a gpt turn and an observation follows: kept, as LLaMA-Factory reads them
        ("glaive_toolcall_zh_demo.json", 300, 43, "2 row(s) have a tool result after an assistant turn"),
        # 50 identity rows hold {{name}} / {{author}}: trained as written, with a warning naming the first
        ("v1_sft_demo.jsonl", 500, 1, "50 row(s) have answers holding LLaMA-Factory's {{name}} / {{author}}"),
    ],
)
def test_llamafactory_demo_files_train_with_the_defaults(tmp_path, name, rows, duplicates, note, tiny_model_dir):
    """LLaMA-Factory's own demo files (verbatim) pass the default gate with the default model's
    tokenizer and max_seq_length, as a run validates them: duplicates left out and reported, nothing
    quarantined (the glaive file's tool calls render), and what validation let through for cause said
    in the notes."""
    from trainer.config.loading import load_settings
    from trainer.model.assets import load_counting_tokenizer

    settings = load_settings("demo", None, [])
    report, examples = validate_dataset(
        FULL / name, tokenizer=load_counting_tokenizer(tiny_model_dir), max_seq_length=settings.max_seq_length
    )
    assert (report.rows_total, report.rows_duplicate, report.rows_quarantined) == (rows, duplicates, 0)
    assert len(examples) == report.rows_valid == rows - duplicates
    assert any(f"{duplicates} exact duplicate row(s) left out" in n for n in report.notes)
    if note is not None:
        assert any(note in n for n in report.notes), report.notes
    check_gates(report, 1, 0.0)  # the default gate: nothing stops this file
    result = invoke("validate", FULL / name, "--report", tmp_path / "r.json")
    assert f"{duplicates} exact duplicates left out" in result.stdout.splitlines()[0]
    saved = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert len(saved["duplicates"]) == duplicates and saved["rows_duplicate"] == duplicates
    assert all({"file", "line", "first_file", "first_line"} <= set(d) for d in saved["duplicates"])


def test_placeholders_quarantined_on_request():
    """unresolved_placeholders: quarantine leaves the identity rows out, each with its reason and where."""
    report, _ = validate_dataset(FULL / "v1_sft_demo.jsonl", unresolved_placeholders="quarantine")
    assert report.reasons == {"unresolved_placeholder": 50}
    assert all("{{name}}" in q.detail or "{{author}}" in q.detail for q in report.quarantined)
    assert report.rows_total == report.rows_valid + report.rows_quarantined + report.rows_duplicate
