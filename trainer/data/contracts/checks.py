"""Code checks GX can't express per row: each row's shape (trainer/data/shapes.py), field types, and
the typed columns each suite's frame is built from (vectorised where pandas can).
"""

from __future__ import annotations

from typing import Any

from trainer.data.formats import FORMAT_FIELDS, Example
from trainer.data.rows import Row
from trainer.data.shapes import (
    chat_shape,
    check_instruction,
    check_row,
    instruction_messages,
    is_conversational,
)
from trainer.data.turns import ROLES, Conversation, RowProblem, kind

__all__ = ["Frame", "RowProblem", "explain", "suite_of", "unknown_format_detail"]


def suite_of(fmt: str, record: dict[str, Any]) -> str:
    """The suite a row of this format is held to: conversations (TRL's conversational
    prompt-completion too) to the chat suite, the others to their own."""
    if fmt in ("chat", "sharegpt") or (fmt == "prompt_completion" and is_conversational(record)):
        return "chat"
    return fmt


def _text_field(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None or isinstance(value, str):
        return value  # None -> GX: missing_field (or fine, for an optional field)
    raise RowProblem("wrong_type", f"'{name}' is {kind(value)}, expected a string")


class Frame:
    """The typed columns of one suite, built row by row, then one pandas DataFrame. Chat rows keep
    their normalised conversation, so it is built once for the contract and the training example."""

    def __init__(self, suite: str):
        self.suite = suite
        self.columns: dict[str, list[Any]] = {"row_id": [], **{c: [] for c in FORMAT_FIELDS.get(suite, ())}}
        self.lists = list(self.columns.values())
        self.conversations: dict[int, Conversation] = {}  # the chat suite's rows, in order

    def __len__(self) -> int:
        return len(self.conversations) if self.suite == "chat" else len(self.columns["row_id"])

    def add(self, row_id: int, record: dict[str, Any], fmt: str) -> None:
        """Take a row; RowProblem (and nothing added) for a wrong shape."""
        if len(record) > 1:
            check_row(record)
        if self.suite == "chat":
            shape = chat_shape(record, fmt)
            if shape.weighted and not _trained(shape.messages):
                raise RowProblem(
                    "not_trained", "every assistant turn has weight 0 (shown, not trained): nothing to learn from"
                )
            self.conversations[row_id] = shape
            return
        values = [_text_field(record, name) for name in FORMAT_FIELDS[fmt]]
        if fmt == "instruction":
            check_instruction(record)
        for column, value in zip(self.lists, (row_id, *values), strict=True):
            column.append(value)

    def example(self, row: Row, row_id: int, fmt: str) -> Example:
        """The training example of a row that passed the contract."""
        if self.suite == "chat":
            shape = self.conversations[row_id]
            return Example(row.key, row.file, row.line, messages=shape.messages, tools=shape.tools)
        record = row.record
        if fmt == "text":
            return Example(row.key, row.file, row.line, text=record["text"])
        if fmt == "instruction":
            return Example(row.key, row.file, row.line, messages=instruction_messages(record))
        messages = [
            {"role": "user", "content": record["prompt"]},
            {"role": "assistant", "content": record["completion"]},
        ]
        return Example(row.key, row.file, row.line, messages=messages)

    def frame(self, duplicates: set[int]):
        import pandas as pd

        if self.suite == "chat":
            shapes = self.conversations.values()
            frame = pd.DataFrame(
                {
                    "row_id": list(self.conversations),
                    # float: NaN where `messages` is null; GX's range checks vectorise on floats, not on Int64
                    "turns": pd.array([None if s.messages is None else len(s.roles) for s in shapes], "float64"),
                    "roles": [None if s.messages is None else _joined(s.roles) for s in shapes],
                    "min_content_chars": pd.array([s.shortest for s in shapes], "float64"),
                    "total_chars": [s.total for s in shapes],
                }
            )
        else:  # vectorised: string lengths of the format's fields, nulls counting 0
            frame = pd.DataFrame(self.columns)
            frame["total_chars"] = sum(
                frame[n].astype(object).str.len().fillna(0).astype("int64") for n in FORMAT_FIELDS[self.suite]
            )
        frame["is_duplicate"] = frame["row_id"].isin(duplicates) if duplicates else False
        return frame


def _joined(roles: list[str]) -> str:
    """The roles joined by commas; a role holding a comma must not read as two roles."""
    joined = ",".join(roles)
    if joined.count(",") != len(roles) - 1:
        joined = ",".join(r.replace(",", ";") for r in roles)
    return joined


def _trained(messages: list[dict[str, Any]]) -> bool:
    """Whether some assistant turn trains (or there is none, which the contract reports itself)."""
    assistants = [m for m in messages if m["role"] == "assistant"]
    return not assistants or any("weight" not in m for m in assistants)


def explain(frame: Frame | None, row: Row, row_id: int, reason: str, detail: str, first: Row | None) -> str:
    """Sharpen a suite's generic detail for one failing row: which turn, which roles, which first copy."""
    if reason == "duplicate_row":
        return f"exact duplicate of {first.file}:{first.line} (the first copy is kept)" if first else detail
    shape = frame.conversations.get(row_id) if frame is not None and frame.suite == "chat" else None
    if shape is None or shape.messages is None:
        return detail
    if reason == "blank_content" and shape.blank_at:
        return f"{shape.blank_at} is empty or whitespace only"
    if reason == "unknown_role" and shape.unknown_at:
        return f"{shape.unknown_at}; use one of {', '.join(ROLES)}"
    if reason in ("bad_turn_order", "no_assistant_turn"):
        return f"roles are {', '.join(shape.roles)}: {detail}"
    return detail


def unknown_format_detail(record: dict[str, Any], file_format: str | None) -> str:
    found = ", ".join(sorted(record)[:8]) or "no fields"
    expected = (
        f"this file is {file_format}: expected {' / '.join(FORMAT_FIELDS[file_format])}"
        if file_format in FORMAT_FIELDS
        else ("expected messages, conversations, instruction + output, prompt + completion or text")
    )
    return f"none of the fields of a known format (found: {found}); {expected}, or rename fields with column_mapping"
