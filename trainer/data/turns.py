"""One conversation, as every chat-like format gives it, normalised to the messages training takes.

A turn is `{role, content}` (chat, OpenAI) or `{from, value}` (ShareGPT; axolotl's pygmalion mixes
`role` and `value`). Roles: system (`developer`), user (`human`), assistant (`gpt`, `bot`,
ShareGPT's `function_call`) and tool (`function`, ShareGPT's `observation`); other roles are kept
as they are for the contract to reject (`unknown_role`). Content is a string or a list of text
parts (`{"type": "text", "text"|"value": ...}`), joined with nothing between them; any other part
(an image, audio, reasoning) is `unsupported_content`. What a turn says about training is honoured
or refused, never dropped: `weight` / `loss_weight` / `train` of 0 or false on an assistant turn
keeps it as context only, and on other turns asking to train them is `unsupported_field`, as are
reasoning fields and axolotl's character-span `train_detail`. Tool calls (`tool_calls`, the legacy
`function_call`, ShareGPT `function_call` turns, LLaMA-Factory v1 `tool_call` parts) become
`tool_calls` with arguments parsed into objects.

Consecutive turns of one role (same name, no tool calls, same weight) are merged into one, their
contents joined by a blank line, and counted: a conversation with two user turns in a row is what
a user meant as one message, and most chat templates refuse it.
"""

from __future__ import annotations

from typing import Any

try:  # a dependency of prefect, so present in every install; json is the fallback and the judge
    import orjson
except ImportError:  # pragma: no cover
    orjson = None
import json
import re

ROLE_ALIASES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "function_call": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
}
ROLES = ("system", "user", "assistant", "tool")
_PLAIN = frozenset(("system", "user", "assistant"))
# ShareGPT names of plain text turns (a `function_call` turn holds a call, not text: the slow path reads it).
_PLAIN_FROM = {name: role for name, role in ROLE_ALIASES.items() if role in _PLAIN and name != "function_call"}
# LLaMA-Factory's identity data leaves these for the user to replace; trained as they are, the model learns them.
_PLACEHOLDER = re.compile(r"\{\{\s*(name|author)\s*\}\}")
MERGE_SEPARATOR = "\n\n"

# Turn fields that change what is trained and that the trainer does not support.
UNSUPPORTED_TURN_FIELDS = {
    "thinking": "reasoning (`thinking`) is not trained or shown by this pipeline",
    "reasoning_content": "reasoning (`reasoning_content`) is not trained or shown by this pipeline",
    "reasoning": "reasoning is not trained or shown by this pipeline",
    "train_detail": "training on character spans of a message (`train_detail`) is not supported; split the message",
    "audio": "audio is not supported by text-only training",
}


_UNSUPPORTED_KEYS = frozenset(UNSUPPORTED_TURN_FIELDS)
_FLAG_KEYS = frozenset(("weight", "loss_weight", "train"))


class RowProblem(Exception):
    """Why a row is quarantined: a reason of the contract vocabulary and a detail naming where."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else f"a {type(value).__name__}"


def parse_json_field(value: Any, where: str) -> Any:
    """A field that may hold JSON as a string (tool arguments, `tools`): the parsed value."""
    if not isinstance(value, str):
        return value
    try:
        parsed = orjson.loads(value) if orjson is not None else json.loads(value)
    except ValueError:
        raise RowProblem("invalid_json", f"{where} is a string that is not valid JSON") from None
    if isinstance(parsed, str):  # OpenAI's cookbook ships such rows: the JSON text encoded a second time
        raise RowProblem(
            "wrong_type",
            f"{where} is a JSON string that decodes to a string, not to an object or a list (JSON encoded twice?)",
        )
    return parsed


class Conversation:
    """A normalised conversation and what the contract checks of it."""

    __slots__ = (
        "messages",
        "roles",
        "shortest",
        "total",
        "merged",
        "blank_at",
        "unknown_at",
        "tools",
        "weighted",
        "uncalled",
    )

    def __init__(self, messages: list[dict[str, Any]] | None = None, roles: list[str] | None = None):
        self.messages, self.roles = messages, roles
        self.shortest: int | None = None  # shortest content of the turns that must have text (0: blank)
        self.total = self.merged = 0  # characters; turns merged into the turn before them
        self.blank_at: str | None = None  # where the first blank turn is, e.g. "messages[1].content"
        self.unknown_at: str | None = None  # where the first unknown role is, e.g. "messages[0].role is 'robot'"
        self.tools: list[dict[str, Any]] | None = None
        self.weighted = False  # some turn has weight 0
        # Tool results after an assistant turn with no tool calls: the call was written as text (LLaMA-Factory's
        # glaive demo has such rows and LLaMA-Factory trains them); kept, counted, said in the report.
        self.uncalled = 0

    def extend(self, other: Conversation) -> None:
        self.messages += other.messages
        self.roles += other.roles
        if other.shortest is not None and (self.shortest is None or other.shortest < self.shortest):
            self.shortest = other.shortest
        self.total += other.total
        self.merged += other.merged
        self.blank_at = self.blank_at or other.blank_at
        self.unknown_at = self.unknown_at or other.unknown_at
        self.weighted = self.weighted or other.weighted
        self.uncalled += other.uncalled


def conversation(turns: Any, where: str) -> Conversation:
    """The normalised conversation of a list of turns (RowProblem for a wrong shape).

    The hot loop of validation: a plain `{role, content}` chat turn is used as it is, not copied,
    and is handled without a function call.
    """
    if type(turns) is not list:
        raise RowProblem("wrong_type", f"'{where}' is {kind(turns)}, expected a list of messages")
    result = Conversation([], [])
    messages, roles = result.messages, result.roles
    shortest: int | None = None
    total = 0
    previous = None  # the role of the last message
    for i, turn in enumerate(turns):
        calls = False
        if type(turn) is dict and len(turn) == 2:
            content, role = turn.get("content"), turn.get("role")
            if type(content) is str and type(role) is str and role in _PLAIN:
                message = turn
            else:
                content, role = turn.get("value"), turn.get("from")
                if type(content) is str and type(role) is str and role in _PLAIN_FROM:
                    role = _PLAIN_FROM[role]
                    message = {"role": role, "content": content}
                else:
                    message = None
        else:
            message = None
        if message is None:
            message = _turn(turn, i, where, messages)
            role, content, calls = message["role"], message["content"], "tool_calls" in message
            _note_turn(result, message, turn, f"{where}[{i}]")
            if role == "tool" and messages[-1]["role"] == "assistant" and "tool_calls" not in messages[-1]:
                result.uncalled += 1
        total += len(content)
        if not calls:  # an assistant turn that only calls tools may have no text
            length = 0 if not content or content.isspace() else len(content)
            if shortest is None or length < shortest:
                shortest = length
                if not length and result.blank_at is None:
                    key = "value" if "value" in turn and "content" not in turn else "content"
                    result.blank_at = f"{where}[{i}].{key}"
        if role == previous and _mergeable(messages[-1], message):
            messages[-1] = {**messages[-1], "content": messages[-1]["content"] + MERGE_SEPARATOR + content}
            result.merged += 1
            continue
        messages.append(message)
        roles.append(role)
        previous = role
    result.shortest, result.total = shortest, total
    return result


def _note_turn(result: Conversation, message: dict[str, Any], turn: dict[str, Any], here: str) -> None:
    result.weighted = result.weighted or "weight" in message
    if message["role"] not in ROLES and result.unknown_at is None:
        result.unknown_at = f"{here}.{'from' if 'from' in turn else 'role'} is {message['role']!r}"


def placeholder_in(messages: list[dict[str, Any]]) -> str | None:
    """LLaMA-Factory's `{{name}}` / `{{author}}` left in an answer: a sentence naming the first, or None."""
    for n, message in enumerate(messages):
        content = message.get("content")
        trained = message["role"] == "assistant" and message.get("weight", 1) != 0  # context is not learnt
        if trained and isinstance(content, str) and "{{" in content:
            found = _PLACEHOLDER.search(content)
            if found:
                return f"message {n} (an answer) holds LLaMA-Factory's {found.group(0)} placeholder"
    return None


def _mergeable(previous: dict[str, Any], message: dict[str, Any]) -> bool:
    if message["role"] not in _PLAIN or "tool_calls" in message or "tool_calls" in previous:
        return False
    return previous.get("name") == message.get("name") and previous.get("weight") == message.get("weight")


def _turn(turn: Any, i: int, where: str, before: list[dict[str, Any]]) -> dict[str, Any]:
    """A turn that is not a plain {role, content} pair: checked field by field, then normalised."""
    here = f"{where}[{i}]"
    if not isinstance(turn, dict):
        raise RowProblem("wrong_type", f"{here} is {kind(turn)}, expected an object with 'role' and 'content'")
    role_key = "from" if "from" in turn and "role" not in turn else "role"
    raw_role = turn.get(role_key)
    if raw_role is None:
        raise RowProblem("missing_field", f"{here}.{role_key} is missing or null")
    if not isinstance(raw_role, str):
        raise RowProblem("wrong_type", f"{here}.{role_key} is {kind(raw_role)}, expected a string")
    role = ROLE_ALIASES.get(raw_role, raw_role)
    for name in turn.keys() & _UNSUPPORTED_KEYS:
        if turn[name] not in (None, "", []):
            raise RowProblem("unsupported_field", f"{here}.{name}: {UNSUPPORTED_TURN_FIELDS[name]}")
    content_key = "value" if "value" in turn and "content" not in turn else "content"
    message: dict[str, Any] = {"role": role}
    calls = _tool_calls(turn, here) if "tool_calls" in turn or "function_call" in turn else []
    content, part_calls = _content(turn.get(content_key), here, content_key, raw_role == "function_call")
    calls = calls + part_calls if part_calls else calls
    if calls:
        if role != "assistant":
            raise RowProblem(
                "bad_turn_order", f"{here} is a {raw_role} turn with tool calls; only assistants call tools"
            )
        message["tool_calls"] = calls
    if content is None:
        if not calls:
            raise RowProblem("missing_field", f"{here}.{content_key} is missing or null")
        content = ""
    message["content"] = content
    if turn.keys() & _FLAG_KEYS:
        _training_flags(turn, role, here, message)
    for name in ("name", "tool_call_id"):
        value = turn.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise RowProblem("wrong_type", f"{here}.{name} is {kind(value)}, expected a string")
            message[name] = value
    if role == "tool" and not (before and before[-1]["role"] in ("tool", "assistant")):
        raise RowProblem("bad_turn_order", f"{here} is a tool result, but no assistant turn comes before it")
    return message


def _content(value: Any, here: str, key: str, is_call: bool) -> tuple[str | None, list[dict[str, Any]]]:
    """(text, tool calls) of a turn's content: a string, or a list of parts."""
    if value is None or type(value) is str and not is_call:
        return value, []
    where = f"{here}.{key}"
    if is_call:  # ShareGPT `function_call` turn: the value is the call(s) as JSON
        return "", _calls_from_json(value, where)
    if not isinstance(value, list):
        raise RowProblem("wrong_type", f"{where} is {kind(value)}, expected a string or a list of text parts")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for n, part in enumerate(value):
        at = f"{where}[{n}]"
        if not isinstance(part, dict):
            raise RowProblem("wrong_type", f"{at} is {kind(part)}, expected a {{'type': 'text', 'text': ...}} part")
        part_type = part.get("type")
        if "train" in part or "weight" in part:
            raise RowProblem(
                "unsupported_field", f"{at} has its own train/weight flag: per-part training is not supported"
            )
        if part_type == "tool_call":  # LLaMA-Factory v1: {"type": "tool_call", "value": "<JSON>"}
            calls += _calls_from_json(part.get("value"), f"{at}.value")
            continue
        if part_type != "text":
            what = "an untyped part" if part_type is None else f"a {part_type!r} part"
            raise RowProblem("unsupported_content", f"{at} is {what}; text-only training can use text parts only")
        text = part.get("text", part.get("value"))
        if not isinstance(text, str):
            raise RowProblem("wrong_type", f"{at}.text is {kind(text)}, expected a string")
        texts.append(text)
    return "".join(texts), calls


def _calls_from_json(value: Any, where: str) -> list[dict[str, Any]]:
    """ShareGPT / LLaMA-Factory calls: `{"name", "arguments"}` (or a list of them) as JSON text."""
    parsed = parse_json_field(value, where)
    if isinstance(parsed, list):
        return [_function(call, f"{where}[{n}]", None) for n, call in enumerate(parsed)]
    return [_function(parsed, where, None)]


def _tool_calls(turn: dict[str, Any], here: str) -> list[dict[str, Any]]:
    calls = turn.get("tool_calls")
    legacy = turn.get("function_call")  # OpenAI's legacy single call
    out: list[dict[str, Any]] = []
    if calls is not None:
        if not isinstance(calls, list):
            raise RowProblem("wrong_type", f"{here}.tool_calls is {kind(calls)}, expected a list")
        for n, call in enumerate(calls):
            where = f"{here}.tool_calls[{n}]"
            if not isinstance(call, dict):
                raise RowProblem(
                    "wrong_type", f"{where} is {kind(call)}, expected {{'type': 'function', 'function': ...}}"
                )
            call_id = call.get("id")
            out.append(
                _function(call.get("function"), f"{where}.function", call_id if isinstance(call_id, str) else None)
            )
    if legacy is not None:
        out.append(_function(legacy, f"{here}.function_call", None))
    return out


def _function(function: Any, where: str, call_id: str | None) -> dict[str, Any]:
    """One tool call as `{"type": "function", "function": {"name", "arguments": dict}, "id"?}`."""
    if not isinstance(function, dict):
        raise RowProblem("wrong_type", f"{where} is {kind(function)}, expected {{'name': ..., 'arguments': {{...}}}}")
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RowProblem("missing_field", f"{where} names no function")
    raw = function.get("arguments", {})
    arguments = parse_json_field(raw, f"{where}.arguments")
    if not isinstance(arguments, dict):
        where_from = f"a JSON string that decodes to {kind(arguments)}" if isinstance(raw, str) else kind(arguments)
        raise RowProblem("wrong_type", f"{where}.arguments is {where_from}, expected an object")
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id is not None:
        call["id"] = call_id
    return call


def _training_flags(turn: dict[str, Any], role: str, here: str, message: dict[str, Any]) -> None:
    """OpenAI `weight`, LLaMA-Factory v1 `loss_weight`, axolotl `train`: 0/false keeps an assistant
    turn as context; asking to train any other turn is refused."""
    for name in ("weight", "loss_weight", "train"):
        value = turn.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or value in (0, 1):
            trained = bool(value)
        else:
            raise RowProblem(
                "unsupported_field", f"{here}.{name} is {value!r}; only 0 and 1 (or false and true) are supported"
            )
        if role == "assistant":
            if not trained:
                message["weight"] = 0
        elif trained:
            raise RowProblem(
                "unsupported_field", f"{here}.{name} asks to train a {role} turn; only assistant turns are trained"
            )
