"""Row shapes → the messages training takes: turns, content parts, weights, tool calls, merges, and
the rows and fields that are refused, each with its reason."""

import json

import pytest

from trainer.data.formats import detect_format, preference_mapping
from trainer.data.shapes import chat_shape, check_instruction, check_row, normalize_tools, to_messages
from trainer.data.turns import RowProblem, conversation, placeholder_in
from trainer.data.windows import split_text


def refused(turns_or_call, where="messages") -> tuple[str, str]:
    with pytest.raises(RowProblem) as problem:
        turns_or_call() if callable(turns_or_call) else conversation(turns_or_call, where)
    return problem.value.reason, problem.value.detail


def test_plain_turns_are_used_as_they_are_and_aliases_are_mapped():
    user = {"role": "user", "content": "q"}
    shape = conversation([user, {"role": "assistant", "content": "a"}], "messages")
    assert shape.messages[0] is user and shape.roles == ["user", "assistant"] and shape.merged == 0
    shape = conversation(
        [{"from": "system", "value": "s"}, {"from": "human", "value": "q"}, {"role": "bot", "value": "a"}],
        "conversations",
    )
    assert shape.messages == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]
    assert conversation([{"role": "developer", "content": "d"}], "messages").roles == ["system"]
    unknown = conversation([{"from": "robot", "value": "x"}], "conversations")
    assert unknown.roles == ["robot"] and unknown.unknown_at == "conversations[0].from is 'robot'"


def test_text_parts_are_joined_and_other_parts_refused():
    parts = [{"type": "text", "text": "2 and "}, {"type": "text", "value": "3."}]
    shape = conversation([{"role": "user", "content": "q"}, {"role": "assistant", "content": parts}], "messages")
    assert shape.messages[1] == {"role": "assistant", "content": "2 and 3."}
    image = [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert refused([{"role": "user", "content": image}]) == (
        "unsupported_content",
        "messages[0].content[1] is a 'image_url' part; text-only training can use text parts only",
    )
    assert refused([{"role": "assistant", "content": [{"type": "text", "text": "a", "train": False}]}])[0] == (
        "unsupported_field"
    )
    assert refused([{"role": "assistant", "content": "a", "thinking": "hmm"}])[0] == "unsupported_field"


def test_weights_keep_assistant_turns_as_context_and_refuse_training_other_turns():
    shape = conversation(
        [
            {"role": "user", "content": "q", "loss_weight": 0.0},
            {"role": "assistant", "content": "draft", "weight": 0},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "final", "train": True},
        ],
        "messages",
    )
    assert [m.get("weight") for m in shape.messages] == [None, 0, None, None] and shape.weighted
    assert refused([{"role": "user", "content": "q", "train": True}]) == (
        "unsupported_field",
        "messages[0].train asks to train a user turn; only assistant turns are trained",
    )
    assert refused([{"role": "assistant", "content": "a", "weight": 0.5}])[0] == "unsupported_field"


def test_tool_calls_in_every_spelling_become_one_shape():
    expected = {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    for turn in (
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}],
        },
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": '{"x": 1}'}},
        {"from": "function_call", "value": '{"name": "f", "arguments": {"x": 1}}'},
        {"role": "assistant", "content": [{"type": "tool_call", "value": '{"name": "f", "arguments": {"x": 1}}'}]},
    ):
        shape = conversation([{"role": "user", "content": "q"}, turn, {"role": "tool", "content": "1"}], "messages")
        call = shape.messages[1]
        assert call["role"] == "assistant" and call["content"] == "" and shape.shortest == 1
        assert [{k: v for k, v in c.items() if k != "id"} for c in call["tool_calls"]] == [expected]
        assert shape.roles == ["user", "assistant", "tool"]
    legacy = conversation(
        [{"role": "user", "content": "q"}, turn, {"role": "function", "name": "f", "content": "1"}], "messages"
    )
    assert legacy.messages[2] == {"role": "tool", "content": "1", "name": "f"}
    assert refused([{"role": "user", "content": "q"}, {"role": "tool", "content": "1"}])[0] == "bad_turn_order"
    bad_arguments = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]
    assert refused(bad_arguments) == (
        "invalid_json",
        "messages[0].tool_calls[0].function.arguments is a string that is not valid JSON",
    )
    # JSON encoded twice (OpenAI's cookbook drone_training.jsonl): said as it is, not "is a string".
    twice = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '"{\\"x\\": 1}"'}}]}]
    reason, detail = refused(twice)
    assert reason == "wrong_type" and "is a JSON string that decodes to a string" in detail, detail
    sharegpt_twice = {"from": "function_call", "value": json.dumps(json.dumps({"name": "f", "arguments": {}}))}
    shape = [{"from": "human", "value": "q"}, sharegpt_twice, {"from": "observation", "value": "1"}]
    with pytest.raises(RowProblem, match="conversations\\[1\\].value is a JSON string that decodes to a string"):
        conversation(shape, "conversations")
    as_list = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1, 2]"}}]}]
    assert "is a JSON string that decodes to a list, expected an object" in refused(as_list)[1]


def test_consecutive_turns_of_one_role_are_merged_unless_named_apart():
    shape = conversation(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": "d"},
        ],
        "messages",
    )
    assert shape.messages == [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c\n\nd"}]
    assert shape.merged == 2 and shape.roles == ["user", "assistant"]
    named = conversation(
        [{"role": "user", "name": "alice", "content": "a"}, {"role": "user", "name": "bob", "content": "b"}], "m"
    )
    assert named.roles == ["user", "user"] and named.merged == 0
    blank = conversation([{"role": "user", "content": " "}, {"role": "user", "content": "b"}], "messages")
    assert blank.shortest == 0 and blank.blank_at == "messages[0].content"  # a blank turn is not hidden by a merge


def test_identity_placeholders_are_found_in_answers_only():
    assert "{{name}}" in placeholder_in(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "I am {{name}}."}]
    )
    assert placeholder_in([{"role": "assistant", "content": "Use {{ item }} in Jinja."}]) is None  # other braces
    assert placeholder_in([{"role": "user", "content": "Who is {{author}}?"}]) is None  # only answers are trained
    context = {"role": "assistant", "content": "I am {{name}}.", "weight": 0}  # shown, never learnt
    assert placeholder_in([{"role": "user", "content": "hi"}, context]) is None


def test_a_tool_result_after_a_call_written_as_text_is_kept_and_counted():
    turns = [
        {"from": "human", "value": "20% off 200?"},
        {"from": "gpt", "value": 'Let me compute.\nAI discount: {"price": 200}'},
        {"from": "observation", "value": '{"discounted": 160}'},
        {"from": "gpt", "value": "160."},
    ]
    shape = conversation(turns, "conversations")
    assert shape.roles == ["user", "assistant", "tool", "assistant"] and shape.uncalled == 1
    assert refused([{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}])[0] == "bad_turn_order"


def test_prompt_completion_conversations_train_only_the_completion():
    record = {
        "prompt": [
            {"role": "user", "content": "1?"},
            {"role": "assistant", "content": "1"},
            {"role": "user", "content": "2?"},
        ],
        "completion": [{"role": "assistant", "content": "1, 2"}],
    }
    assert [m.get("weight") for m in chat_shape(record, "prompt_completion").messages] == [None, 0, None, None]
    openai = {"input": {"messages": [{"role": "user", "content": "q"}], "tools": []}, "preferred_output": []}
    mapped = {"prompt": openai["input"], "completion": {"role": "assistant", "content": "a"}}
    assert chat_shape(mapped, "prompt_completion").messages[-1] == {"role": "assistant", "content": "a"}
    assert refused(lambda: chat_shape({"prompt": ["a"], "completion": "b"}, "prompt_completion"))[0] == "wrong_type"
    no_answer = {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "user", "content": "x"}]}
    assert refused(lambda: chat_shape(no_answer, "prompt_completion"))[0] == "no_assistant_turn"


def test_alpaca_system_and_history_become_earlier_turns():
    record = {"instruction": "i", "input": "x", "output": "o", "system": "s", "history": [["q1", "a1"]]}
    check_instruction(record)
    assert to_messages(record, "instruction") == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "i\n\nx"},
        {"role": "assistant", "content": "o"},
    ]
    assert refused(lambda: check_instruction({**record, "history": [["q1"]]}))[0] == "wrong_type"
    assert refused(lambda: check_instruction({**record, "history": [["q1", " "]]}))[0] == "blank_content"


def test_row_fields_that_forbid_training():
    assert refused(lambda: check_row({"prompt": "p", "completion": "c", "label": False}))[0] == "label_false"
    check_row({"prompt": "p", "completion": "c", "label": True})
    assert refused(lambda: check_row({**{"messages": []}, "images": ["a.png"]}))[0] == "unsupported_content"
    check_row({"messages": [], "images": []})


def test_tools_are_parsed_and_wrapped():
    bare = {"name": "f", "parameters": {"type": "object"}}
    assert normalize_tools('[{"name": "f", "parameters": {"type": "object"}}]', "tools") == [
        {"type": "function", "function": bare}
    ]
    assert normalize_tools([{"type": "function", "function": bare}], "tools") == [
        {"type": "function", "function": bare}
    ]
    assert normalize_tools("[]", "tools") is None and normalize_tools(None, "tools") is None
    assert refused(lambda: normalize_tools([{"description": "no name"}], "tools"))[0] == "wrong_type"


def test_data_that_is_not_sft_is_detected_first_and_the_mapping_to_train_on_it_named():
    assert detect_format({"messages": [], "chosen": {}, "rejected": {}}) == "preference"
    assert detect_format({"prompt": "p", "completions": [], "labels": []}) == "stepwise"
    assert detect_format({"input_ids": [1], "labels": [1]}) == "tokenized"
    assert detect_format({"segments": []}) == "segments"
    assert detect_format({"prompt": "p", "completion": "c", "label": False}) == "prompt_completion"
    assert preference_mapping({"prompt": "p", "chosen": "c", "rejected": "r"}) == {"chosen": "completion"}
    assert preference_mapping({"chosen": [], "rejected": []}) == {"chosen": "messages"}
    assert preference_mapping({"chosen": "t", "rejected": "u"}) == {"chosen": "text"}
    assert preference_mapping({"conversations": [], "chosen": {}, "rejected": {}}) == {
        "conversations": "prompt",
        "chosen": "completion",
    }
    assert preference_mapping({"input": {}, "preferred_output": [], "non_preferred_output": []}) == {
        "input": "prompt",
        "preferred_output": "completion",
    }
    assert preference_mapping({"chosen_messages": [], "rejected_messages": []}) == {"chosen_messages": "messages"}


class _WordTokenizer:
    """One token per word, offsets included: enough to test where windows are cut."""

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        import re

        return {"offset_mapping": [m.span() for m in re.finditer(r"\S+", text)]}


def test_text_windows_cover_the_text_in_order_with_overlap_and_fit():
    text = " ".join(f"w{i}" for i in range(50))

    def count(piece: str, continues: bool) -> int:  # a begin token, and an end token after the last window
        return len(piece.split()) + 1 + (0 if continues else 1)

    windows = split_text(_WordTokenizer(), text, count, max_tokens=12, overlap=3)
    assert all(count(t, c) <= 12 for t, c in windows) and [c for _, c in windows][-1] is False
    assert all(c for _, c in windows[:-1]) and windows[0][0].startswith("w0 ") and windows[-1][0].endswith("w49")
    words = [w.split() for w, _ in windows]
    assert all(a[-3:] == b[:3] for a, b in zip(words, words[1:], strict=False))  # 3 tokens of overlap
    assert sorted({w for ws in words for w in ws}, key=lambda w: int(w[1:])) == text.split()
    assert split_text(_WordTokenizer(), text, count, max_tokens=2, overlap=0) == []  # no room past the specials


def test_a_sharegpt_system_column_is_the_conversations_system_prompt():
    turns = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    shape = chat_shape({"conversations": turns, "system": "Be brief."}, "sharegpt")
    assert shape.messages[0] == {"role": "system", "content": "Be brief."} and shape.roles[0] == "system"
    assert chat_shape({"conversations": turns, "system": ""}, "sharegpt").roles == ["user", "assistant"]
    assert refused(lambda: chat_shape({"conversations": turns, "system": 3}, "sharegpt"))[0] == "wrong_type"
