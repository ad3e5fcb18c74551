"""From examples to token ids and labels: the chat template, and loss on the answers only.

The assistant spans are found by rendering the template twice per assistant turn, with and
without that turn, and reading the character span in between. That works for any template whose
rendering of a prefix of the conversation is a prefix of the whole (all the catalog's models), so
we need no `{% generation %}` markers the shipped templates don't have.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from trainer.data import Example

log = logging.getLogger("llm_trainer.tokens")
IGNORE_INDEX = -100

# For tokenizers that ship no chat template (Falcon): plain and readable.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + eos_token + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def ensure_chat_template(tokenizer) -> bool:
    """Give the tokenizer a default template if it has none; True when one was added."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return True


def render(tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    full = render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
        through = render(tokenizer, messages[: i + 1])
        if not full.startswith(through) or not through.startswith(before):
            raise ValueError("the chat template does not render conversation prefixes as prefixes")
        spans.append((len(before), len(through)))
    return full, spans


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]


def tokenize_example(tokenizer, example: Example, train_on_prompt: bool = False) -> TokenizedExample:
    if example.text is not None:
        ids = tokenizer(example.text + (tokenizer.eos_token or ""), add_special_tokens=True)["input_ids"]
        return TokenizedExample(ids, list(ids))
    text, spans = assistant_spans(tokenizer, example.messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    if train_on_prompt:
        return TokenizedExample(ids, list(ids))
    labels = []
    for token_id, (start, end) in zip(ids, encoded["offset_mapping"]):
        inside = any(s <= start < e for s, e in spans) and end > start
        labels.append(token_id if inside else IGNORE_INDEX)
    return TokenizedExample(ids, labels)


def tokenize_examples(
    tokenizer, examples: list[Example], max_seq_length: int, train_on_prompt: bool = False
) -> tuple[list[TokenizedExample], int]:
    """Tokenize all examples. Rows longer than max_seq_length are left out and counted, never
    truncated: a truncated answer teaches the model to stop mid-sentence."""
    kept, too_long = [], 0
    for example in examples:
        tokenized = tokenize_example(tokenizer, example, train_on_prompt)
        if len(tokenized.input_ids) > max_seq_length:
            too_long += 1
            continue
        kept.append(tokenized)
    if too_long:
        log.warning("%d of %d rows are longer than max_seq_length=%d tokens and were left out", too_long, len(examples), max_seq_length)
    return kept, too_long
