"""Completion-only masks on every chat template TRL, axolotl and unsloth publish (tests/fixtures/
templates/published/, verbatim), with the facts derived as for any local model folder (no catalog).

The property, for each template and multi-turn conversations with and without a system prompt: every
answer is trained with the same end of turn after it (the last answer too; eos after the last only when
the template has no end of turn), and every trained span ends on a token boundary, so no token of the
next turn's header (`<|user|>` after Phi-3's `<|end|>\\n`) is ever trained. The vision templates that
read only list-of-parts content (Idefics3, LLaVA-NeXT) get the rows' text as text parts.
"""

from __future__ import annotations

import pytest

from tests.templates import FOLDS_SYSTEM, TEMPLATES, fixture, published_spec, published_templates, save_tokenizer
from trainer.model.loading import load_tokenizer
from trainer.model.templates import derive_facts, render_for_training

PUBLISHED = published_templates()
USERS = ["Capital of France?", "How many people live there?", "Any museums worth a visit?"]
ANSWERS = ["Paris is the capital.", "About two million people.", "Yes, the Louvre and the Orsay."]


def _conversation(system: bool) -> list[dict]:
    messages = [{"role": "system", "content": "Answer briefly."}] if system else []
    for user, answer in zip(USERS, ANSWERS, strict=True):
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return messages


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("published")


@pytest.mark.parametrize("path", PUBLISHED, ids=[f"{p.parent.name}/{p.stem}" for p in PUBLISHED])
def test_every_answer_and_only_its_end_of_turn_is_trained(root, path):
    tokenizer = load_tokenizer(save_tokenizer(published_spec(path), root / f"{path.parent.name}-{path.stem}"))
    facts = derive_facts(tokenizer)
    end_of_turn = facts.end_of_turn[0] if facts.end_of_turn else ""
    for system in (False, True):
        messages = _conversation(system)
        rendered = render_for_training(tokenizer, messages)
        assert len(rendered.spans) == len(ANSWERS), (rendered.text, rendered.spans)
        offsets = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for i, ((start, end), answer) in enumerate(zip(rendered.spans, ANSWERS, strict=True)):
            trained = rendered.text[start:end]
            assert answer in trained, (trained, answer)
            after = trained[trained.index(answer) + len(answer) :].strip()
            last = i == len(ANSWERS) - 1
            if end_of_turn or not last:
                assert after == end_of_turn, (i, trained, facts)
            else:  # no end of turn: eos after the last answer, the template's own or appended
                assert after == tokenizer.eos_token, (trained, facts)
            crossing = [(a, b) for a, b in offsets if a < end < b]
            assert not crossing, f"answer {i}: a token straddles its span's end: {rendered.text[end - 8 : end + 8]!r}"


def test_phi3_ends_a_turn_with_its_end_token_not_part_of_the_next_header(root):
    """The case that showed the class: `<|end|>\\n<|user|>` after a middle answer and
    `<|end|>\\n<|endoftext|>` after the last share `<|end|>\\n<|`, which is not a token boundary."""
    path = next(p for p in PUBLISHED if p.parent.name == "trl" and p.stem == "phi3")
    tokenizer = load_tokenizer(save_tokenizer(published_spec(path), root / "phi3-case"))
    assert derive_facts(tokenizer).end_of_turn == ("<|end|>",)


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_derived_facts_agree_with_the_catalog_and_the_fixtures(root, name):
    """The catalog's models too: what derivation finds is what the fixture's render facts say."""
    from tests.templates import template_folder

    tokenizer = load_tokenizer(template_folder(name, root))
    spec = fixture(name)
    facts = derive_facts(tokenizer)
    assert facts.end_of_turn == tuple(spec["end_of_turn"]), facts
    assert facts.supports_system_role == (name not in FOLDS_SYSTEM)  # Mistral v0.3 drops it: folded


def test_a_template_that_writes_a_literal_placeholder_is_warned_about(root, tmp_path):
    """unsloth's Llama 3.1 template writes `{system_message}` when a row has no system prompt."""
    from tests.cli import invoke
    from tests.conftest import write_jsonl

    path = next(p for p in PUBLISHED if p.parent.name == "unsloth" and p.stem == "llama31")
    folder = save_tokenizer(published_spec(path), root / "unsloth-llama31-warn")
    assert derive_facts(load_tokenizer(folder)).placeholders == ("{system_message}",)
    write_jsonl(
        tmp_path / "data" / "a.jsonl",
        [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}],
    )
    for command in (["tokens"], ["validate", "--max-seq-length", "512"]):
        result = invoke(*command, tmp_path / "data", "--model", folder)
        assert result.returncode == 0, result.stderr
        assert "writes {system_message} literally into conversations" in result.stdout + result.stderr
    clean = next(p for p in PUBLISHED if p.parent.name == "trl" and p.stem == "llama3_1")
    assert (
        derive_facts(load_tokenizer(save_tokenizer(published_spec(clean), root / "trl-llama31-clean"))).placeholders
        == ()
    )


def test_a_plain_text_end_that_merges_into_the_next_header_is_trained_whole(root):
    """`[/INST]` as plain text, then `<b>user:`: the BPE merges `]<` across the turn's edge after a
    middle answer. The end of turn is still `[/INST]` (cut where the last answer's turn ends), so each
    answer's trained text holds the whole marker (the merged `<` with it, as documented)."""
    template = (
        "{% for m in messages %}<b>{{ m['role'] }}: {{ m['content'] }}[/INST]{% endfor %}"
        "{% if add_generation_prompt %}<b>assistant: {% endif %}"
    )
    spec = {
        "chat_template": template,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": None,
        "unk_token": None,
        "additional_special_tokens": [],
        "add_bos_token": False,
    }
    tokenizer = load_tokenizer(save_tokenizer(spec, root / "inst-merge"))
    assert derive_facts(tokenizer).end_of_turn == ("[/INST]",)
    rendered = render_for_training(tokenizer, _conversation(False))
    for (start, end), answer in zip(rendered.spans, ANSWERS, strict=True):
        assert rendered.text[start:end] == f"{answer}[/INST]"
