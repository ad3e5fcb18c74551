"""The row formats the pipeline trains on, how a row's format is detected, and Example, what a
valid row becomes.

Formats: chat `messages`, ShareGPT `conversations`, instruction (`instruction`, optional `input`,
`output`, and LLaMA-Factory's optional `system` and `history`), `prompt`/`completion` (strings, or
TRL's conversational message lists), and plain `text`. A row's format is the one whose fields it has
most of; a *file's* format is the one most of its parseable rows have (ties: the one seen first),
or `dataset_format` when forced.

Some rows look like training rows but are another kind of data that supervised fine-tuning must
not train on (NOT_SFT): preference pairs (`chosen` / `rejected`), stepwise supervision
(`completions` + `labels`), pre-tokenized ids, axolotl's template-free `segments`. They are detected
first, so `messages` + `chosen` is preference data, never a chat row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FORMATS = ("chat", "sharegpt", "instruction", "prompt_completion", "text")


# The top-level fields that mark each format (a row has the format it has most fields of).
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "sharegpt": ("conversations",),
    "instruction": ("instruction", "input", "output"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}


KNOWN_FIELDS = tuple(dict.fromkeys(name for names in FORMAT_FIELDS.values() for name in names))


# CSV cells of these columns hold a JSON list (a chat or ShareGPT conversation in a spreadsheet).
JSON_CELL_FIELDS = ("messages", "conversations")


# The training text a format becomes: sharegpt/instruction/prompt_completion all become chat.
TRAINS_AS = {"chat": "chat", "sharegpt": "chat", "instruction": "chat", "prompt_completion": "chat", "text": "text"}


# The chosen side of each preference shape (TRL, LLaMA-Factory, LLaMA-Factory v1, OpenAI DPO and its spec spelling).
PREFERENCE_FIELDS = ("chosen", "chosen_messages", "preferred_output", "preferred_completion")


# Kinds of data that are not supervised fine-tuning rows: kind -> (what it is, what to do), in a report's words.
NOT_SFT: dict[str, tuple[str, str]] = {
    "preference": ("preference data (chosen / rejected answers)", ""),
    "stepwise": ("stepwise supervision data (completions with per-step labels, for process reward models)", ""),
    "tokenized": ("pre-tokenized rows (input_ids)", "; token ids belong to one tokenizer: give the text instead"),
    "segments": (
        "axolotl's template-free `segments` rows (hand-masked text without a chat template)",
        "; convert them to chat messages",
    ),
}


_FORMAT_OF_FIELD = {name: fmt for fmt in reversed(FORMATS) for name in FORMAT_FIELDS[fmt]}


def _not_sft_kind(record: dict[str, Any]) -> str | None:
    if any(name in record for name in PREFERENCE_FIELDS):
        return "preference"
    if "completions" in record and "labels" in record:
        return "stepwise"
    if "input_ids" in record:
        return "tokenized"
    if "segments" in record and not any(name in record for name in KNOWN_FIELDS):
        return "segments"
    return None


def detect_format(record: dict[str, Any]) -> str | None:
    """The format whose marker fields the row has most of (ties: the earlier in FORMATS), a NOT_SFT
    kind, or None if none."""
    if len(record) == 1:  # the common case, e.g. {"messages": [...]}: one field, one answer
        name = next(iter(record))
        return _FORMAT_OF_FIELD.get(name) or _not_sft_kind(record)
    kind = _not_sft_kind(record)
    if kind is not None:
        return kind
    best, hits = None, 0
    for fmt in FORMATS:
        count = sum(1 for name in FORMAT_FIELDS[fmt] if name in record)
        if count > hits:
            best, hits = fmt, count
    return best


def decide_file_format(row_formats: Iterable[str | None]) -> str | None:
    """A file's format: the one most of its parseable rows have (ties: the one seen first)."""
    return majority_format(Counter(f for f in row_formats if f is not None))


def majority_format(counts: Counter) -> str | None:
    """The rule, on counts kept as rows are read: most rows wins; a tie goes to the one counted first."""
    return counts.most_common(1)[0][0] if counts else None


def preference_mapping(record: dict[str, Any]) -> dict[str, str]:
    """The column_mapping that trains on the chosen answers of a preference row of this shape."""
    if "chosen_messages" in record:  # LLaMA-Factory v1: two whole conversations
        return {"chosen_messages": "messages"}
    for chosen in ("preferred_output", "preferred_completion"):  # OpenAI DPO: input.messages + a list of answers
        if chosen in record:
            return {"input": "prompt", chosen: "completion"}
    if "prompt" in record:  # TRL explicit prompt
        return {"chosen": "completion"}
    for context in ("conversations", "messages"):  # LLaMA-Factory / axolotl: a conversation + one chosen message
        if context in record:
            return {context: "prompt", "chosen": "completion"}
    return {"chosen": "text" if isinstance(record.get("chosen"), str) else "messages"}  # TRL implicit prompt


@dataclass(frozen=True)
class Example:
    """One valid row, ready to tokenize: chat messages (with the row's tool definitions), or plain text.

    Each message is `{"role": "system"|"user"|"assistant"|"tool", "content": str}` plus, where the row
    has them: `weight` (0 on an assistant turn that is shown but not trained; absent = trained),
    `tool_calls` (`[{"type": "function", "function": {"name", "arguments": dict}, "id"?}]`),
    `tool_call_id`, `name`. `tools` are JSON-schema function definitions
    (`{"type": "function", "function": {...}}`). `continues` marks a window of a long text that the
    next window goes on from: no end-of-text token belongs after it.
    """

    key: str
    file: str
    line: int
    messages: list[dict[str, Any]] | None = None
    text: str | None = None
    tools: list[dict[str, Any]] | None = None
    continues: bool = False
