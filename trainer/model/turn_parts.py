"""Two parts of a chat template's facts that need care of their own: where an answer's end of turn
stops (a token boundary), and tool-call ids of the form a template demands (Mistral v0.3)."""

from __future__ import annotations

import hashlib
import json
import os
import re

LONG_ID = "call_Zq7xY2kP9mW4vR1tB8nL"  # as OpenAI writes them
SHORT_ID_LENGTH = 9  # Mistral v0.3's rule, the one such rule among published templates


def turn_end(tokenizer, after_middle: str, after_last: str) -> str:
    """What closes an answer: the text both a middle answer (then the next user turn's header) and the
    last answer (then eos, or nothing) are followed by, cut back to a token boundary.

    The common characters alone can end inside a token: Phi-3 writes `<|end|>\n<|user|>` after a
    middle answer and `<|end|>\n<|endoftext|>` after the last, which share `<|end|>\n<|`; trained, the
    span would take in the whole `<|user|>` token (a token is trained when any of its characters is).
    So: it ends after the tokenizer's eos when eos is in it (Cohere's templates always write the next
    `<|START_OF_TURN_TOKEN|>`, even after the last answer); else after the last special or added token
    in it (`<|end|>`); else (a plain-text end like `[/INST]`) it is cut to a token boundary of the text
    after the last answer, where the turn really ends. After a middle answer the next header's first
    character may merge into the end's last token (`]<` before `<b>user`); that token is then trained,
    as a merged token at an answer's start is (trainer/model/tokens.py), rather than leave the end
    string's last character untaught."""
    common = os.path.commonprefix([after_middle, after_last])
    eos = tokenizer.eos_token
    if eos and eos in common:
        return common[: common.index(eos) + len(eos)].strip()
    added = [t for t in {*tokenizer.all_special_tokens, *tokenizer.get_added_vocab()} if t and not t.isspace()]
    ends = [m.end() for token in added for m in re.finditer(re.escape(token), common)]
    if ends:
        return common[: max(ends)].strip()
    try:
        last = tokenizer(after_last, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, TypeError, ValueError):  # a slow tokenizer gives no offsets: characters it is
        return common.strip()
    return common[: max((end for _, end in last if end <= len(common)), default=0)].strip()


def ids_fit(messages: list[dict], length: int) -> bool:
    """Every tool call and tool result already carries an id the template accepts (kept as they are)."""
    fits = re.compile(f"[0-9A-Za-z]{{{length}}}").fullmatch
    for message in messages:
        for call in message.get("tool_calls") or ():
            if not isinstance(call.get("id"), str) or not fits(call["id"]):
                return False
        if message["role"] == "tool" and not (
            isinstance(message.get("tool_call_id"), str) and fits(message["tool_call_id"])
        ):
            return False
    return True


def with_derived_ids(messages: list[dict], length: int) -> list[dict]:
    """Tool-call ids of `length` alphanumeric characters, derived from the row and each call's index (the
    same row always gets the same ids), each tool result given its call's new id: by the old id when it
    names one, else in order (ShareGPT function calls carry no ids)."""
    row = hashlib.sha256(json.dumps(messages, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    renamed: dict[str, str] = {}
    pending: list[str] = []
    out, index = [], 0
    for message in messages:
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                new = alphanumeric(hashlib.sha256(f"{row}:{index}".encode()).digest(), length)
                index += 1
                if isinstance(call.get("id"), str):
                    renamed[call["id"]] = new
                pending.append(new)
                calls.append({**call, "id": new})
            message = {**message, "tool_calls": calls}
        elif message["role"] == "tool":
            old = message.get("tool_call_id")
            new = renamed.get(old) if isinstance(old, str) else None
            if new is None and pending:
                new = pending[0]
            if new is None:  # a result of a call written as text: an id of its own, so the template renders it
                new = alphanumeric(hashlib.sha256(f"{row}:result:{index}".encode()).digest(), length)
                index += 1
            if new in pending:
                pending.remove(new)
            message = {**message, "tool_call_id": new}
        out.append(message)
    return out


def alphanumeric(digest: bytes, length: int) -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(alphabet))
        chars.append(alphabet[digit])
    return "".join(chars)


def as_text_parts(messages: list[dict]) -> list[dict]:
    """Each string content as one `{"type": "text", "text": ...}` part (for templates that read only parts)."""
    return [
        {**m, "content": [{"type": "text", "text": m["content"]}]} if isinstance(m.get("content"), str) else m
        for m in messages
    ]


def through_end_of_turn(text: str, end: int, end_of_turn: tuple[str, ...]) -> int:
    """`end` moved past the end-of-turn string that follows it (whitespace between allowed), if any."""
    after = end
    while after < len(text) and text[after].isspace():
        after += 1
    for marker in sorted(end_of_turn, key=len, reverse=True):
        if marker and text.startswith(marker, after):
            return after + len(marker)
    return end
