"""The token step of validation, with the base model's tokenizer: each valid row tokenized exactly as
training will. A row the chat template can't render is `template_error` (the template's own
message); a row over max_seq_length is reported (`overlong_rows: warn`, training leaves it out) or
`too_many_tokens` (`quarantine`); a plain-text row over it is split into windows instead when
`text_windows` is on (trainer/data/windows.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trainer.data.contracts.report import OverlongRow
from trainer.data.formats import Example
from trainer.data.windows import split_text


def count_tokens(tokenizer, examples: list[Example]) -> list[int]:
    """Tokens per example, counted exactly as training tokenizes them (trainer.model.tokens)."""
    from trainer.model.tokens import tokenize_example

    return [len(tokenize_example(tokenizer, example).input_ids) for example in examples]


@dataclass
class Lengths:
    problems: dict[int, tuple[str, str]] = field(default_factory=dict)  # row -> (reason, detail) to quarantine
    overlong: list[OverlongRow] = field(default_factory=list)
    max_tokens: int | None = None
    windows: dict[int, list[Example]] = field(default_factory=dict)  # row -> its windows
    folded: int = 0  # rows whose system prompt the template folded into the first user turn
    tool_ids: int = 0  # rows whose tool-call ids were replaced by ones of the length the template demands


def check_lengths(
    examples: dict[int, Example],
    pool: Any,
    max_seq_length: int,
    overlong_rows: str,
    text_windows: bool = False,
    overlap: int = 0,
) -> Lengths:
    """Tokenize the rows through `pool` (a trainer.model.token_pool.TokenPool over the tokenizer)."""
    from trainer.model.tokens import count_or_error, tokenize_example

    tokenizer = pool.tokenizer
    result, counts = Lengths(), {}
    for i, (_, counted) in zip(examples, pool.imap(count_or_error, examples.values()), strict=True):
        if isinstance(counted, str):  # the template's message
            result.problems[i] = ("template_error", counted)
            continue
        counts[i] = counted.tokens
        result.folded += counted.folded_system
        result.tool_ids += counted.derived_tool_ids
    result.max_tokens = max(counts.values(), default=None)

    def count(text: str, continues: bool) -> int:
        window = Example("", "", 0, text=text, continues=continues)
        return len(tokenize_example(tokenizer, window).input_ids)

    for i, tokens in counts.items():
        if tokens <= max_seq_length:
            continue
        example = examples[i]
        if text_windows and example.text is not None:
            pieces = split_text(tokenizer, example.text, count, max_seq_length, overlap)
            if pieces:
                result.windows[i] = [dataclasses.replace(example, text=t, continues=c) for t, c in pieces]
                continue
        result.overlong.append(OverlongRow(example.file, example.line, tokens))
        if overlong_rows == "quarantine":
            result.problems[i] = (
                "too_many_tokens",
                f"{tokens} tokens > max_seq_length {max_seq_length}; shorten or split the row, or raise max_seq_length"
                + ("" if example.text is None or text_windows else " (or set text_windows: true)"),
            )
    return result
