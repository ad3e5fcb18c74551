"""From examples to token ids and labels: the chat template, and loss on the answers only.

trainer/model/templates.py renders each conversation once and gives the character spans to train:
every trained assistant answer (weight 0 turns are context only) with its end-of-turn token(s), and
nothing of the template's own text. Here the spans become labels through the tokenizer's character
offsets (`return_offsets_mapping`), on the rendered text tokenized once with add_special_tokens=False
(the templates write their bos themselves: no double bos).

A token is trained when any of its characters is in a span. A token can straddle a span's edge when
the tokenizer merges the template's last character with the answer's first (` <` after `[/INST]`,
`]<` in Mistral v0.1's 2023 template): we train it, since leaving it out would never teach the
answer's first character; the cost is that the model also learns that scaffold character inside the
merged token. Templates with a `{% generation %}` mask could use `return_assistant_tokens_mask`, but
none of the catalog's templates has one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from trainer.data.formats import Example
from trainer.errors import TemplateRenderError
from trainer.model.progress import RowProgress
from trainer.model.templates import render_for_training, render_prompt
from trainer.model.token_pool import TokenPool

log = logging.getLogger("llm_trainer.tokens")
IGNORE_INDEX = -100

# For tokenizers that ship no chat template: plain and readable.
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


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False, tools: list | None = None) -> str:
    """The conversation as the model sees it; a system prompt is folded into the first user turn when
    the template has no system role. Raises TemplateRenderError when the template can't render it."""
    return render_prompt(tokenizer, messages, add_generation_prompt, tools)


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    folded_system: bool = False  # the system prompt went into the first user turn
    derived_tool_ids: bool = False  # tool-call ids replaced by ones the template accepts


def tokenize_example(tokenizer, example: Example, train_on_prompt: bool = False) -> TokenizedExample:
    """Token ids and labels (IGNORE_INDEX outside the answers). Raises TemplateRenderError for a row
    the chat template can't render (the data contracts quarantine it as `template_error`)."""
    if example.text is not None:
        # A window of a longer text that the next window continues gets no end of text.
        end = "" if example.continues else (tokenizer.eos_token or "")
        ids = tokenizer(example.text + end, add_special_tokens=True)["input_ids"]
        return TokenizedExample(ids, list(ids))
    conversation = render_for_training(tokenizer, example.messages, example.tools)
    encoded = tokenizer(conversation.text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    labels = list(ids) if train_on_prompt else _labels(ids, encoded["offset_mapping"], conversation.spans)
    return TokenizedExample(ids, labels, conversation.folded_system, conversation.derived_tool_ids)


def _labels(ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """Each token's label: its id when any of its characters is inside a span (spans in order)."""
    labels, k = [], 0
    for token_id, (start, end) in zip(ids, offsets, strict=True):
        while k < len(spans) and spans[k][1] <= start:
            k += 1
        inside = end > start and k < len(spans) and start < spans[k][1] and end > spans[k][0]
        labels.append(token_id if inside else IGNORE_INDEX)
    return labels


@dataclass(frozen=True)
class TokenCount:
    """What validation keeps of a tokenized row (the ids stay in the worker that made them)."""

    tokens: int
    folded_system: bool
    derived_tool_ids: bool


def tokenize_or_error(tokenizer, example: Example, train_on_prompt: bool = False) -> TokenizedExample | str:
    """`tokenize_example`, or the chat template's message for a row it can't render (for TokenPool)."""
    try:
        return tokenize_example(tokenizer, example, train_on_prompt)
    except TemplateRenderError as exc:
        return str(exc)


def count_or_error(tokenizer, example: Example) -> TokenCount | str:
    tokenized = tokenize_or_error(tokenizer, example)
    if isinstance(tokenized, str):
        return tokenized
    return TokenCount(len(tokenized.input_ids), tokenized.folded_system, tokenized.derived_tool_ids)


@dataclass
class TokenizedRows:
    kept: list[TokenizedExample] = field(default_factory=list)
    kept_count: int = 0  # rows kept (also when they went to `keep` rather than into `kept`)
    too_long: int = 0
    unrenderable: list[tuple[Example, str]] = field(default_factory=list)  # (row, the template's message)
    folded: int = 0  # rows whose system prompt was folded into the first user turn


def tokenize_rows(
    tokenizer,
    examples: Sequence[Example],
    max_seq_length: int,
    train_on_prompt: bool = False,
    keep: Callable[[TokenizedExample], None] | None = None,
    processes: int = 1,
) -> TokenizedRows:
    """Tokenize all examples, in `processes` processes (trainer/model/token_pool.py). Rows longer
    than max_seq_length are left out and counted, never truncated (a truncated answer teaches the
    model to stop mid-sentence); rows the chat template can't render are left out and listed
    (validation quarantines them first, so normally none). With `keep`, each kept row goes to it as
    it is made (to disk) instead of into `kept`."""
    rows = TokenizedRows()
    progress = RowProgress("tokenizing", len(examples))
    with TokenPool(tokenizer, processes) as pool:
        for example, tokenized in pool.imap(partial(tokenize_or_error, train_on_prompt=train_on_prompt), examples):
            progress.advance()
            if isinstance(tokenized, str):
                rows.unrenderable.append((example, tokenized))
                continue
            _count_or_keep(rows, tokenized, max_seq_length, keep)
    progress.finish()
    return rows


def _count_or_keep(
    rows: TokenizedRows,
    tokenized: TokenizedExample,
    max_seq_length: int,
    keep: Callable[[TokenizedExample], None] | None,
) -> None:
    rows.folded += tokenized.folded_system
    if len(tokenized.input_ids) > max_seq_length:
        rows.too_long += 1
        return
    rows.kept_count += 1
    if keep is not None:
        keep(tokenized)
    else:
        rows.kept.append(tokenized)


def tokenize_examples(
    tokenizer, examples: list[Example], max_seq_length: int, train_on_prompt: bool = False
) -> tuple[list[TokenizedExample], int]:
    """`tokenize_rows` for training and evaluation: the rows kept and how many were too long; the
    rows left out are logged."""
    rows = tokenize_rows(tokenizer, examples, max_seq_length, train_on_prompt)
    if rows.too_long:
        log.warning(
            "%d of %d rows are longer than max_seq_length=%d tokens and were left out",
            rows.too_long,
            len(examples),
            max_seq_length,
        )
    if rows.unrenderable:
        example, message = rows.unrenderable[0]
        log.warning(
            "%d of %d rows can't be rendered by the chat template and were left out (first: %s:%d: %s)",
            len(rows.unrenderable),
            len(examples),
            example.file,
            example.line,
            message,
        )
    return rows.kept, rows.too_long


def trained_segments(tokenizer, tokenized: TokenizedExample) -> list[tuple[str, bool]]:
    """The decoded sequence (special tokens kept) as runs of trained / not trained text.

    The texts concatenate to exactly `tokenizer.decode(input_ids)`: each run is cut out of that one
    decoding at the length of the decoding of the tokens before it. Decoding each run alone would not
    add up: a byte-level token may hold part of a character, and decoders drop or merge spaces at
    the edges. When a cut falls inside a character, the character goes with the run after it."""
    ids = tokenized.input_ids
    flags = [label != IGNORE_INDEX for label in tokenized.labels]
    full = tokenizer.decode(ids, skip_special_tokens=False)
    cuts = [0]
    for b in range(1, len(ids)):
        if flags[b] != flags[b - 1]:
            prefix = tokenizer.decode(ids[:b], skip_special_tokens=False)
            while prefix and not full.startswith(prefix):
                prefix = prefix[:-1]
            cuts.append(max(len(prefix), cuts[-1]))
    starts = [0] + [b for b in range(1, len(ids)) if flags[b] != flags[b - 1]]
    segments: list[tuple[str, bool]] = []
    for k, cut in enumerate(cuts):
        piece = full[cut : cuts[k + 1] if k + 1 < len(cuts) else len(full)]
        flag = flags[starts[k]] if ids else False
        if not piece:
            continue
        if segments and segments[-1][1] == flag:
            segments[-1] = (segments[-1][0] + piece, flag)
        else:
            segments.append((piece, flag))
    return segments
