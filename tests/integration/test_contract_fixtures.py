"""The files users of LLaMA-Factory, axolotl, TRL, FastChat and OpenAI fine-tuning already have
(tests/fixtures/datasets/, see its README for what each file must do), validated as they ship: every
file read, every row valid or quarantined with a reason from the vocabulary, no traceback, and
nothing trained that the data marks as not to be trained. Real files, real Great Expectations.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from trainer.data.contracts.suites import REASONS
from trainer.data.contracts.validate import validate_dataset
from trainer.errors import DataUnusableError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"

Q = dict  # reason -> rows quarantined with it

# file: (rows valid, {reason: rows quarantined}), or ("refused", what the one-line error says), or
# ("not read", the warning). wiki_demo.txt is validated with dataset_format: text (see test below).
EXPECTED: dict[str, tuple] = {
    "axolotl/alpaca.jsonl": (3, Q()),
    "axolotl/chat_template.jsonl": (3, Q()),
    "axolotl/chat_template_content_parts.jsonl": (0, Q(unsupported_field=3)),  # per-part masks, reasoning
    "axolotl/chat_template_message_train.jsonl": (2, Q(unsupported_field=1)),  # row 1 trains a human turn
    "axolotl/completion.jsonl": (3, Q()),
    "axolotl/dpo_chat_template.jsonl": ("refused", "preference data"),
    "axolotl/input_output.jsonl": ("refused", "template-free `segments` rows"),
    "axolotl/pretraining.jsonl": (3, Q()),
    "axolotl/pygmalion.jsonl": (2, Q(unknown_role=1)),  # row 1's role is "..."
    "axolotl/sharegpt.jsonl": (2, Q(unknown_role=1)),
    "axolotl/stepwise_supervised.jsonl": ("refused", "stepwise supervision data"),
    "axolotl/tokenized.jsonl": ("refused", "pre-tokenized rows"),
    "axolotl/tool_use.jsonl": (3, Q()),
    "llamafactory/alpaca_en_demo.json": (5, Q()),
    "llamafactory/alpaca_history_demo.json": (3, Q()),
    "llamafactory/c4_demo.jsonl": (5, Q()),
    "llamafactory/dataset_info.json": ("not read", "one JSON object with none of the fields of a format"),
    "llamafactory/dpo_en_demo.json": ("refused", "--map conversations=prompt --map chosen=completion"),
    "llamafactory/glaive_toolcall_en_demo.json": (5, Q()),
    "llamafactory/identity.json": (5, Q()),  # {{name}} / {{author}}: trained as written, a note says so
    "llamafactory/kto_en_demo.json": (4, Q(label_false=1)),
    "llamafactory/mllm_demo.json": (0, Q(unsupported_content=5)),
    "llamafactory/reason_tool_use_demo_50.jsonl": (0, Q(unsupported_content=5)),  # reasoning parts
    "llamafactory/v1_dpo_demo.jsonl": ("refused", "--map chosen_messages=messages"),
    "llamafactory/v1_multimodal_demo.jsonl": (0, Q(unsupported_content=5)),
    "llamafactory/v1_sft_demo.jsonl": (5, Q()),
    # LLaMA-Factory's demo files whole (their exact duplicates are left out, not invalid: test_duplicates.py)
    "llamafactory/full/alpaca_zh_demo.json": (992, Q()),
    "llamafactory/full/glaive_toolcall_zh_demo.json": (257, Q()),  # 2 rows write a call as text: kept, noted
    "llamafactory/full/v1_sft_demo.jsonl": (499, Q()),
    "llamafactory/wiki_demo.txt": ("refused", "plain text; set dataset_format: text"),
    "openai/chat_basic.jsonl": (3, Q()),
    "openai/chat_content_parts.jsonl": (3, Q()),
    "openai/chat_legacy_functions.jsonl": (3, Q()),
    "openai/chat_name.jsonl": (3, Q()),
    "openai/chat_tool_calls.jsonl": (3, Q()),
    "openai/chat_tool_results.jsonl": (3, Q()),
    "openai/chat_vision.jsonl": (0, Q(unsupported_content=3)),
    "openai/chat_weight.jsonl": (3, Q()),
    "openai/legacy_prompt_completion.jsonl": (3, Q()),
    "openai/preference_dpo.jsonl": ("refused", "--map input=prompt --map preferred_output=completion"),
    "sharegpt/dummy_conversation.json": (5, Q()),
    "sharegpt/sharegpt_edge_cases.json": (3, Q(bad_turn_order=1, blank_content=1)),
    "trl/harmony_conversational.jsonl": (0, Q(unsupported_field=3)),  # `thinking`
    "trl/language_modeling_conversational.jsonl": (3, Q()),
    "trl/language_modeling_standard.jsonl": (3, Q()),
    "trl/preference_conversational.jsonl": ("refused", "--map chosen=completion"),
    "trl/preference_conversational_implicit_prompt.jsonl": ("refused", "--map chosen=messages"),
    "trl/preference_standard.jsonl": ("refused", "--map chosen=completion"),
    "trl/preference_standard_implicit_prompt.jsonl": ("refused", "--map chosen=text"),
    "trl/prompt_completion_conversational.jsonl": (3, Q()),
    "trl/prompt_completion_standard.jsonl": (3, Q()),
    "trl/prompt_only_conversational.jsonl": (0, Q(missing_field=3)),
    "trl/prompt_only_standard.jsonl": (0, Q(missing_field=3)),
    "trl/stepwise_supervision.jsonl": ("refused", "stepwise supervision data"),
    "trl/tool_calling.jsonl": (3, Q()),
    "trl/unpaired_preference_conversational.jsonl": (1, Q(label_false=2)),
    "trl/unpaired_preference_standard.jsonl": (2, Q(label_false=1)),
    "trl/vision_prompt_completion.jsonl": (1, Q(unsupported_content=2)),  # row 2 has no image
}


def _data_files() -> list[str]:
    return sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file() and p.suffix != ".md")


def test_the_table_covers_every_fixture_file():
    assert sorted(EXPECTED) == _data_files()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_file_is_read_and_every_row_has_an_outcome(name):
    expected = EXPECTED[name]
    if expected[0] == "refused":
        with pytest.raises(DataUnusableError) as refused:
            validate_dataset(FIXTURES / name)
        message = str(refused.value)
        assert expected[1] in message and "\n" not in message and Path(name).name in message.split(": ")[0], message
        return
    report, examples = validate_dataset(FIXTURES / name)  # anything but DataUnusableError is a bug
    if expected[0] == "not read":
        assert report.rows_total == 0 and report.ignored_files == [Path(name).name]
        assert any(expected[1] in w for w in report.warnings), report.warnings
        return
    valid, reasons = expected
    got = {(q.line, q.reason, q.detail) for q in report.quarantined}
    assert (report.rows_valid, dict(report.reasons)) == (valid, reasons), got
    assert report.rows_valid + report.rows_quarantined == len(report.quarantined) + len(examples)
    assert report.rows_total == report.rows_valid + report.rows_quarantined + report.rows_duplicate
    assert all(q.reason in REASONS and len(q.detail) > 20 for q in report.quarantined), got
    assert all(q.raw for q in report.quarantined)  # the record's own bytes, to find and fix it
    for example in examples:
        json.dumps(example.messages), json.dumps(example.tools)  # what the distributed launch writes
        assert example.text is not None or any(
            m["role"] == "assistant" and m.get("weight", 1) != 0 for m in example.messages
        ), example


def test_plain_text_files_are_read_with_the_text_format():
    report, examples = validate_dataset(FIXTURES / "llamafactory" / "wiki_demo.txt", dataset_format="text")
    assert (report.rows_valid, report.rows_quarantined, report.format) == (5, 0, "text")
    assert [e.line for e in examples] == [1, 2, 3, 4, 5] and examples[0].text.startswith("Anarchism is")


@pytest.mark.parametrize(
    "name", sorted(n for n, e in EXPECTED.items() if e[0] == "refused" and e[1].startswith("--map"))
)
def test_the_mapping_a_preference_refusal_names_trains_on_the_chosen_answers(name):
    with pytest.raises(DataUnusableError) as refused:
        validate_dataset(FIXTURES / name)
    mapping = dict(re.findall(r"--map (\w+)=(\w+)", str(refused.value)))
    report, examples = validate_dataset(FIXTURES / name, column_mapping=mapping)
    assert report.rows_quarantined == 0 and report.rows_valid == len(examples) > 0
    rows = [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()] if name.endswith("l") else None
    rows = rows or json.loads((FIXTURES / name).read_text())
    for row, example in zip(rows, examples, strict=True):
        rejected = row.get("rejected", row.get("non_preferred_output", row.get("rejected_messages")))
        rejected_text = json.dumps(rejected)
        trained = [m["content"] for m in example.messages or [] if m["role"] == "assistant" and "weight" not in m]
        trained = trained if example.messages else [example.text]
        assert trained and not any(json.dumps(t)[1:-1] in rejected_text for t in trained), (trained, rejected)


def _assistant_turns(name: str) -> list[tuple[int, str, bool]]:
    """(line, content, trained) of every assistant turn in the examples of a fixture file."""
    _, examples = validate_dataset(FIXTURES / name)
    return [
        (e.line, m["content"], m.get("weight", 1) == 1)
        for e in examples
        for m in e.messages
        if m["role"] == "assistant"
    ]


def test_nothing_is_trained_that_the_data_marks_as_not_to_be_trained():
    # OpenAI weight 0: shown as context, not trained.
    assert [c for _, c, trained in _assistant_turns("openai/chat_weight.jsonl") if not trained] == [
        "Paris",
        "William Shakespeare",
        "384,400 kilometers",
    ]
    assert ("Let me check.", False) in [(c, t) for _, c, t in _assistant_turns("openai/chat_tool_results.jsonl")]
    # axolotl `train: false` on an assistant turn; TRL: answers inside a conversational prompt are context.
    assert (2, "124", False) in _assistant_turns("axolotl/chat_template_message_train.jsonl")
    assert (3, "1, 2.", False) in _assistant_turns("trl/prompt_completion_conversational.jsonl")
    # KTO / unpaired preference: a `label: false` answer never becomes a target.
    for name, bad in (
        ("trl/unpaired_preference_conversational.jsonl", {"It is green.", "Milan."}),
        ("trl/unpaired_preference_standard.jsonl", {" green."}),
    ):
        assert not bad & {c for _, c, _ in _assistant_turns(name)}
    kto = json.loads((FIXTURES / "llamafactory" / "kto_en_demo.json").read_text())
    bad = {m["content"] for row in kto if row["label"] is False for m in row["messages"] if m["role"] == "assistant"}
    assert bad and not bad & {c for _, c, _ in _assistant_turns("llamafactory/kto_en_demo.json")}


def test_tool_calls_tool_results_and_tools_reach_the_examples():
    _, examples = validate_dataset(FIXTURES / "llamafactory" / "glaive_toolcall_en_demo.json")
    first = examples[0]
    call = next(m for m in first.messages if "tool_calls" in m)
    assert call["role"] == "assistant" and call["content"] == ""
    assert call["tool_calls"] == [
        {
            "type": "function",
            "function": {"name": "search_recipes", "arguments": {"ingredients": ["chicken", "bell peppers", "rice"]}},
        }
    ]
    assert first.messages[first.messages.index(call) + 1]["role"] == "tool"
    assert first.tools[0]["type"] == "function" and first.tools[0]["function"]["name"] == "search_recipes"
    assert examples[1].tools is None  # `"tools": "[]"`
    _, openai = validate_dataset(FIXTURES / "openai" / "chat_tool_calls.jsonl")
    last = openai[0].messages[-1]
    assert last["tool_calls"][0] == {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "arguments": {"location": "San Francisco, USA", "format": "celsius"},
        },
        "id": "call_id",
    }
    _, legacy = validate_dataset(FIXTURES / "openai" / "chat_legacy_functions.jsonl")
    assert [m["role"] for m in legacy[1].messages] == ["user", "assistant", "tool", "assistant"]
    assert legacy[1].messages[2]["name"] == "get_current_weather" and legacy[1].tools is None  # `functions: []`


def test_row_shapes_become_the_conversations_they_mean():
    _, parts = validate_dataset(FIXTURES / "openai" / "chat_content_parts.jsonl")
    assert parts[2].messages[1]["content"] == "2 and 3."  # text parts joined with nothing between them
    _, named = validate_dataset(FIXTURES / "openai" / "chat_name.jsonl")
    assert [(m["role"], m.get("name")) for m in named[0].messages[:3]] == [
        ("system", None),
        ("system", "example_user"),
        ("system", "example_assistant"),
    ]
    _, history = validate_dataset(FIXTURES / "llamafactory" / "alpaca_history_demo.json")
    assert [m["role"] for m in history[0].messages] == ["system"] + ["user", "assistant"] * 3
    assert [m["role"] for m in history[2].messages] == ["user", "assistant"]  # `system: ""`, `history: []`
    report, edge = validate_dataset(FIXTURES / "sharegpt" / "sharegpt_edge_cases.json")
    merged = next(e for e in edge if len(e.messages) == 4)
    assert merged.messages[0]["content"] == "I have a question about Python.\n\nHow do I reverse a list?"
    assert (report.rows_merged, report.turns_merged) == (1, 2) and "merged" in report.notes[0]
    _, harmony_free = validate_dataset(FIXTURES / "trl" / "language_modeling_conversational.jsonl")
    assert harmony_free[1].messages[0] == {"role": "system", "content": "You answer briefly."}
