"""Completion-only masks on the real chat templates of the catalog's models (and a few more).

Each tokenizer is built offline from tests/fixtures/templates/ (the verbatim template and special
tokens; see tests/templates.py) and loaded with from_pretrained. The expected trained text comes from
the fixtures' own render facts (what the template writes after an answer), not from the code under
test: every trained run of tokens must decode to exactly one answer as the template renders it plus
its end of turn; the only extra allowed is one character the tokenizer merged into the answer's
first token (a space, or `]` in Mistral's 2023 template).
"""

from __future__ import annotations

import pytest

from tests.templates import (
    CATALOG_TEMPLATES,
    FOLDS_SYSTEM,
    TEMPLATES,
    TOOLS,
    check_trained,
    fixture,
    load_template_tokenizer,
)
from trainer.data.formats import Example
from trainer.errors import TemplateRenderError
from trainer.model.tokens import IGNORE_INDEX, tokenize_example, tokenize_rows, trained_segments

SYSTEM = "You are a helpful assistant."


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("templates")


def conversation(*turns: str, system: str | None = None) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system else []
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return messages


def trained_runs(tokenizer, tokenized) -> list[str]:
    runs, current = [], []
    for token_id, label in zip(tokenized.input_ids, tokenized.labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token_id
            current.append(token_id)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run, skip_special_tokens=False) for run in runs]


def assert_trained(name, tokenizer, messages, answers, tools=None):
    """The trained runs are exactly `answers` (as rendered) each with its end of turn."""
    tokenized = tokenize_example(tokenizer, Example("k", "f.jsonl", 1, messages=messages, tools=tools))
    check_trained(name, trained_runs(tokenizer, tokenized), answers)
    return tokenized


@pytest.mark.parametrize("name", TEMPLATES)
def test_single_turn_with_and_without_a_system_prompt(root, name):
    tokenizer = load_template_tokenizer(name, root)
    assert_trained(name, tokenizer, conversation("What is 2+2?", "2+2 equals 4."), ["2+2 equals 4."])
    messages = conversation("What is 2+2?", "2+2 equals 4.", system=SYSTEM)
    tokenized = assert_trained(name, tokenizer, messages, ["2+2 equals 4."])
    text = tokenizer.decode(tokenized.input_ids, skip_special_tokens=False)
    assert tokenized.folded_system == (name in FOLDS_SYSTEM) and SYSTEM in text
    assert text.index(SYSTEM) < text.index("What is 2+2?")


@pytest.mark.parametrize("name", TEMPLATES)
def test_three_turns_with_and_without_a_system_prompt(root, name):
    tokenizer = load_template_tokenizer(name, root)
    turns = ("Where is my refund?", "It was sent on Monday.", "When will it arrive?", "Within five days.")
    turns += ("Thanks!", "You are welcome.")
    answers = list(turns[1::2])
    plain = assert_trained(name, tokenizer, conversation(*turns), answers)
    assert not plain.folded_system
    with_system = assert_trained(name, tokenizer, conversation(*turns, system=SYSTEM), answers)
    assert with_system.folded_system == (name in FOLDS_SYSTEM)
    text = tokenizer.decode(with_system.input_ids, skip_special_tokens=False)
    assert SYSTEM in text and text.index(SYSTEM) < text.index("Where is my refund?")
    if name in FOLDS_SYSTEM:
        assert f"{SYSTEM}\n\nWhere is my refund?" in text
    bos = tokenizer.bos_token_id
    if bos is not None and text.startswith(tokenizer.bos_token):  # the template writes bos: no second one
        assert with_system.input_ids[0] == bos and with_system.input_ids[1] != bos


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("answer", ["<b>Bold</b> claim.", ".5 percent of it.", " Sure, here it is."])
def test_answers_starting_with_markup_punctuation_or_space(root, name, answer):
    tokenizer = load_template_tokenizer(name, root)
    messages = conversation("First?", answer, "Second?", answer)
    assert_trained(name, tokenizer, messages, [answer, answer])


@pytest.mark.parametrize("name", TEMPLATES)
def test_a_weight_zero_turn_is_shown_but_not_trained(root, name):
    tokenizer = load_template_tokenizer(name, root)
    messages = conversation("One?", "Answer one.", "Two?", "Not this one.", "Three?", "Answer three.", system=SYSTEM)
    messages[4]["weight"] = 0
    tokenized = assert_trained(name, tokenizer, messages, ["Answer one.", "Answer three."])
    assert "Not this one." in tokenizer.decode(tokenized.input_ids, skip_special_tokens=False)


def test_mistral_2023_template_merges_the_bracket_into_the_answer(root, tmp_path):
    """The 2023 v0.1 template writes `[/INST]` right before the answer: `]<` is one token, trained."""
    from tests.templates import build_tokenizer_folder
    from trainer.model.loading import load_tokenizer

    folder = build_tokenizer_folder("mistral-7b-instruct-v0.1", tmp_path / "v01-2023", version=0)
    tokenizer = load_tokenizer(folder)
    tokenized = tokenize_example(tokenizer, Example("k", "f", 1, messages=conversation("Q?", "<b>A</b>")))
    (run,) = trained_runs(tokenizer, tokenized)
    assert run == "]<b>A</b></s>", run  # the answer's first character is trained, in the merged token `]<`


def test_falcon_trains_eos_after_the_last_answer_only(root):
    tokenizer = load_template_tokenizer("falcon-7b-instruct", root)
    messages = conversation("One?", "First\n\nanswer.", "Two?", "Second answer.")
    # Falcon's template collapses blank lines inside an answer: what it renders is what is trained.
    tokenized = assert_trained("falcon-7b-instruct", tokenizer, messages, ["First\nanswer.", "Second answer."])
    assert tokenized.input_ids.count(tokenizer.eos_token_id) == 1 and tokenized.labels[-1] == tokenizer.eos_token_id


TOOL_CALL_TEXT = {
    "llama-3.1-8b-instruct": '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    "mistral-7b-instruct-v0.3": '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, '
    '"id": "call00001"}]',
    "qwen3": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
}


def tool_conversation() -> list[dict]:
    call = {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "18 degrees"},
        {"role": "assistant", "content": "It is 18 degrees."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "You are welcome."},
    ]


@pytest.mark.parametrize("name", sorted(TOOL_CALL_TEXT))
def test_tool_calls_are_trained_as_the_template_renders_them(root, name):
    tokenizer = load_template_tokenizer(name, root)
    answers = [TOOL_CALL_TEXT[name], "It is 18 degrees.", "You are welcome."]
    tokenized = assert_trained(name, tokenizer, tool_conversation(), answers, tools=TOOLS)
    text = tokenizer.decode(tokenized.input_ids, skip_special_tokens=False)
    assert "18 degrees" in text and "The weather in a city" in text  # the tool result and the tools list


@pytest.mark.parametrize(
    "name",
    ["gemma-2-2b-it", "llama-2-13b-chat", "openchat-3.5-0106", "falcon-7b-instruct", "mistral-7b-instruct-v0.1"],
)
def test_templates_without_tools_refuse_tool_rows(root, name):
    tokenizer = load_template_tokenizer(name, root)
    with pytest.raises(TemplateRenderError, match="does not render tool calls"):
        tokenize_example(tokenizer, Example("k", "f", 1, messages=tool_conversation(), tools=TOOLS))


def test_text_a_template_drops_is_refused_not_silently_lost(root):
    tokenizer = load_template_tokenizer("llama-3.1-8b-instruct", root)
    messages = tool_conversation()
    messages[2]["content"] = "Let me look that up."  # Llama 3.1 renders only the call of such a turn
    with pytest.raises(TemplateRenderError, match="drops the text of an assistant turn that calls tools"):
        tokenize_example(tokenizer, Example("k", "f", 1, messages=messages, tools=TOOLS))


def test_rows_a_template_cannot_render_are_skipped_and_counted(root):
    tokenizer = load_template_tokenizer("gemma-2-2b-it", root)
    good = Example("k1", "a.jsonl", 1, messages=conversation("Hi", "Hello.", system=SYSTEM))
    two_users = Example("k2", "a.jsonl", 2, messages=[*conversation("Hi"), *conversation("Again", "Hello.")])
    tools = Example("k3", "a.jsonl", 3, messages=tool_conversation(), tools=TOOLS)
    rows = tokenize_rows(tokenizer, [good, two_users, tools], max_seq_length=4096)
    assert len(rows.kept) == 1 and rows.folded == 1 and rows.too_long == 0
    assert [e.line for e, _ in rows.unrenderable] == [2, 3]
    assert rows.unrenderable[0][1] == (
        "the chat template can't render this row: Conversation roles must alternate user/assistant/user/assistant/..."
    )
    assert "does not render tool calls" in rows.unrenderable[1][1]


@pytest.mark.parametrize("name", CATALOG_TEMPLATES)
def test_catalog_facts_are_what_the_real_template_does(root, name):
    """The catalog's facts name this exact template, and rendering probes finds the same facts."""
    import hashlib

    from trainer.config.catalog import ARCHITECTURES
    from trainer.model.templates import derive_facts, template_facts

    tokenizer = load_template_tokenizer(name, root)
    arch = ARCHITECTURES[TEMPLATES[name]]
    text = fixture(name)["chat_template"].replace("\r\n", "\n")
    assert hashlib.sha256(text.encode()).hexdigest() in arch.template_sha256
    assert template_facts(tokenizer).source == f"catalog:{arch.key}"
    derived = derive_facts(tokenizer)
    assert derived.supports_system_role == arch.supports_system_role
    assert derived.supports_tools == arch.supports_tools == fixture(name)["supports_tools"]
    assert (
        set(derived.end_of_turn) <= set(arch.end_of_turn) and list(arch.end_of_turn)[:1] == fixture(name)["end_of_turn"]
    )


def test_tiny_model_masks_differ_from_the_old_method_only_by_the_newline_after_end(tiny_tokenizer):
    """On the demo data, the labels equal the previous prefix-rendering method's except at one token
    per answer: the `\n` the template writes after `<|end|>`, which the old method trained and which
    is the template's text, not the answer's (the demo's eval_loss moved by that token alone)."""
    from tests.conftest import DEMO_DATA
    from trainer.data.contracts.validate import validate_dataset
    from trainer.model.templates import template_facts

    assert template_facts(tiny_tokenizer).source == "catalog:tiny-llama"
    end, newline = tiny_tokenizer.convert_tokens_to_ids("<|end|>"), tiny_tokenizer("\n", add_special_tokens=False)
    _, examples = validate_dataset(DEMO_DATA)
    differing = 0
    for example in examples:
        tokenized = tokenize_example(tiny_tokenizer, example)
        old = _prefix_method_labels(tiny_tokenizer, example.messages)
        for i, (new_label, old_label) in enumerate(zip(tokenized.labels, old, strict=True)):
            if new_label != old_label:
                assert new_label == IGNORE_INDEX and tokenized.input_ids[i - 1] == end
                assert [tokenized.input_ids[i]] == newline["input_ids"]
                differing += 1
        answers = sum(m["role"] == "assistant" for m in example.messages)
        assert sum(label == end for label in tokenized.labels) == answers
    assert differing == sum(sum(m["role"] == "assistant" for m in e.messages) for e in examples)


def _prefix_method_labels(tokenizer, messages):
    """The previous implementation: spans from rendering each prefix (valid for the tiny template)."""
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
            spans.append((len(before), len(tokenizer.apply_chat_template(messages[: i + 1], tokenize=False))))
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    return [
        t if any(s <= a < e for s, e in spans) and b > a else IGNORE_INDEX
        for t, (a, b) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
    ]


@pytest.mark.parametrize("name", TEMPLATES)
def test_segments_concatenate_to_the_exact_decoded_sequence(root, name):
    tokenizer = load_template_tokenizer(name, root)
    messages = conversation("Café? 東京?", "🙂 Oui, naïve ünïcödé.", "Encore?", "<b>Très</b> bien 🙂", system=SYSTEM)
    tokenized = tokenize_example(tokenizer, Example("k", "f", 1, messages=messages))
    segments = trained_segments(tokenizer, tokenized)
    assert "".join(text for text, _ in segments) == tokenizer.decode(tokenized.input_ids, skip_special_tokens=False)
    assert all(a[1] != b[1] for a, b in zip(segments, segments[1:], strict=False))  # adjacent runs differ
    trained = [text for text, flag in segments if flag]
    assert trained == trained_runs(tokenizer, tokenized)


@pytest.mark.parametrize("name", [n for n in TEMPLATES if n not in CATALOG_TEMPLATES])
def test_templates_the_catalog_does_not_know_have_their_facts_derived(root, name):
    from trainer.model.templates import template_facts

    facts = template_facts(load_template_tokenizer(name, root))
    spec = fixture(name)
    assert facts.source == "derived"
    assert list(facts.end_of_turn) == spec["end_of_turn"] and facts.supports_tools == spec["supports_tools"]


def test_a_tokenizer_without_a_template_gets_the_default_and_trains_eos(root):
    from trainer.model.tokens import ensure_chat_template

    tokenizer = load_template_tokenizer("llama-2-13b-chat", root)
    tokenizer.chat_template = None
    assert ensure_chat_template(tokenizer)
    messages = conversation("One?", "Answer one.", "Two?", "Answer two.", system=SYSTEM)
    tokenized = tokenize_example(tokenizer, Example("k", "f", 1, messages=messages))
    assert [run.lstrip(" ") for run in trained_runs(tokenizer, tokenized)] == ["Answer one.</s>", "Answer two.</s>"]


def test_qwen3_reasoning_inside_an_answer_is_refused_not_cut(root):
    tokenizer = load_template_tokenizer("qwen3", root)
    thinking = "<think>Add them.</think>4."
    for messages in (
        conversation("2+2?", thinking, "3+3?", "6."),  # an earlier turn: the template drops the reasoning
        conversation("2+2?", thinking),  # the last turn: the template rewrites the think block
    ):
        with pytest.raises(TemplateRenderError, match="rewrites the answer|renders this row differently"):
            tokenize_example(tokenizer, Example("k", "f", 1, messages=messages))
