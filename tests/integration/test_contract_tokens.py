"""The token step of validation with a real tokenizer (the tiny model's, built locally): long plain
text split into windows that fit, and rows the chat template can't render quarantined."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import chat, write_jsonl
from trainer.data.contracts.lengths import count_tokens
from trainer.data.contracts.validate import validate_dataset

C4 = Path(__file__).resolve().parents[1] / "fixtures" / "datasets" / "llamafactory" / "c4_demo.jsonl"


@pytest.fixture(scope="module")
def tokenizer(tokenizer_folder):
    from trainer.model.assets import load_counting_tokenizer

    return load_counting_tokenizer(tokenizer_folder)


def test_long_text_rows_become_windows_that_fit(tmp_path, tokenizer):
    texts = [json.loads(line)["text"] for line in C4.read_text(encoding="utf-8").splitlines()]
    report, examples = validate_dataset(C4, tmp_path / "r", tokenizer=tokenizer, max_seq_length=128)
    assert (report.rows_valid, report.rows_overlong, len(examples)) == (5, 5, 5)  # off: reported, left out

    report, windows = validate_dataset(
        C4, tmp_path / "w", tokenizer=tokenizer, max_seq_length=128, text_windows=True, text_window_overlap=16
    )
    assert (report.rows_valid, report.rows_overlong, report.rows_windowed) == (5, 0, 5)
    assert report.windows == len(windows) > 5 and "split into" in report.notes[0]
    assert max(count_tokens(tokenizer, windows)) <= 128
    for line, text in enumerate(texts, start=1):
        pieces = [w for w in windows if w.line == line]
        assert len({w.key for w in pieces}) == 1  # one row, one side of the held-out split
        assert [w.continues for w in pieces] == [True] * (len(pieces) - 1) + [False]
        assert text.startswith(pieces[0].text) and text.endswith(pieces[-1].text)
        assert all(p.text in text for p in pieces)
        # Consecutive windows overlap and leave nothing out: each starts before the previous one ends.
        starts = [text.index(p.text) for p in pieces]
        assert all(b < a + len(p.text) for a, b, p in zip(starts, starts[1:], pieces, strict=False))
    saved = json.loads((tmp_path / "w" / "validation_report.json").read_text())
    assert (saved["rows_windowed"], saved["windows"], saved["text_windows"]) == (5, len(windows), True)


def test_a_row_the_chat_template_cannot_render_is_quarantined_with_its_message(tmp_path, tokenizer_folder):
    from trainer.model.assets import load_counting_tokenizer

    folder = tmp_path / "tok"
    shutil.copytree(tokenizer_folder, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    template = config.get("chat_template") or (folder / "chat_template.jinja").read_text()
    guard = (
        "{% for m in messages %}{% if 'BOOM' in m['content'] %}{{ raise_exception('no BOOM here') }}{% endif %}"
        "{% endfor %}"
    )
    if "chat_template" in config:
        config["chat_template"] = guard + template
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    else:
        (folder / "chat_template.jinja").write_text(guard + template)
    data = write_jsonl(tmp_path / "data" / "a.jsonl", [chat("fine", "ok"), chat("say BOOM", "no")])
    report, examples = validate_dataset(data.parent, tokenizer=load_counting_tokenizer(folder), max_seq_length=256)
    assert [(q.line, q.reason) for q in report.quarantined] == [(2, "template_error")]
    assert "no BOOM here" in report.quarantined[0].detail and len(examples) == report.rows_valid == 1


def test_real_templates_quarantine_what_they_cannot_render_and_the_report_says_what_was_folded(tmp_path):
    """Verbatim templates (tests/fixtures/templates): a system prompt is folded (a note says so); a
    tool-call row is `template_error` on Gemma 2, which renders no tool calls; on Mistral v0.3, whose
    template raises on an id that is not 9 characters long, the row's ids are derived (a note says so)."""
    from tests.templates import load_template_tokenizer

    system = {"role": "system", "content": "Be brief."}
    call = {"id": "call1", "type": "function", "function": {"name": "f", "arguments": {}}}
    rows = [
        {"messages": [system, *chat("Hi", "Hello.")["messages"]]},
        {"messages": [{"role": "user", "content": "a"}, *chat("b", "c")["messages"]]},  # two user turns: merged
        {
            "messages": [
                {"role": "user", "content": "Call f"},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call1", "content": "42"},
                {"role": "assistant", "content": "It said 42."},
            ]
        },
    ]
    data = write_jsonl(tmp_path / "data" / "a.jsonl", rows)
    for name, detail in [
        ("gemma-2-2b-it", "this model's chat template does not render tool calls"),
        ("mistral-7b-instruct-v0.3", None),
    ]:
        tokenizer = load_template_tokenizer(name, tmp_path / "templates")
        report, examples = validate_dataset(data.parent, tmp_path / name, tokenizer=tokenizer, max_seq_length=512)
        if detail is None:
            assert report.quarantined == [] and [e.line for e in examples] == [1, 2, 3]
            assert any("1 row(s) call tools and the chat template demands 9-character" in n for n in report.notes)
        else:
            assert [(q.line, q.reason) for q in report.quarantined] == [(3, "template_error")]
            assert detail in report.quarantined[0].detail
            assert [e.line for e in examples] == [1, 2]
        assert report.rows_merged == 1
        assert any("1 row(s) have a system prompt and the chat template has no system role" in n for n in report.notes)
