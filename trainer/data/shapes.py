"""Rows → what training takes: each format's row shape checked and turned into chat messages (with
the row's tools), or refused with a reason.

Chat (`messages`), ShareGPT (`conversations`, with LLaMA-Factory's optional top-level `system`) and
TRL's conversational prompt-completion (prompt and completion as message lists, or OpenAI
preference's `input` object) are conversations (trainer/data/turns.py). Instruction rows become a
user turn (`instruction`, plus `\\n\\n` + `input` when not empty) and an assistant turn (`output`),
after LLaMA-Factory's `system` and `history` (earlier `[question, answer]` pairs, trained like the
last answer). String prompt-completion rows become one user and one assistant turn.

Row-level refusals: `label: false` (an unpaired-preference / KTO answer marked bad) is `label_false`;
images, videos or audio beside the text are `unsupported_content`; LLaMA-Factory's identity
placeholders (`{{name}}`, `{{author}}`) left in an answer are `unresolved_placeholder`.
"""

from __future__ import annotations

from typing import Any

from trainer.data.turns import Conversation, RowProblem, conversation, kind, parse_json_field

MEDIA_FIELDS = ("images", "videos", "audios", "image", "video", "audio")


def check_row(record: dict[str, Any]) -> None:
    """Row-level fields that decide whether the row may train at all (RowProblem if not)."""
    if record.get("label") is False:
        raise RowProblem(
            "label_false",
            "label is false: an unpaired-preference (KTO) row whose answer is an example of what not to say; it is "
            "never trained",
        )
    for name in MEDIA_FIELDS:
        media = record.get(name)
        if media not in (None, "", []):
            count = f": {len(media)}" if isinstance(media, list) else ""
            raise RowProblem(
                "unsupported_content", f"the row has {name} (`{name}`{count}); text-only training can't use them"
            )


def is_conversational(record: dict[str, Any]) -> bool:
    """A prompt-completion row whose prompt or completion is a message list (or a message object)."""
    return isinstance(record.get("prompt"), (list, dict)) or isinstance(record.get("completion"), (list, dict))


def chat_shape(record: dict[str, Any], fmt: str) -> Conversation:
    """The conversation of a chat, ShareGPT or conversational prompt-completion row (no messages
    when the list is missing or null: the contract reports that as missing_field)."""
    if fmt == "prompt_completion":
        return _prompt_completion(record)
    key = "messages" if fmt == "chat" else "conversations"
    turns = record.get(key)
    if turns is None:
        return Conversation()
    system = record.get("system") if len(record) > 1 else None
    if system is not None:  # LLaMA-Factory's ShareGPT `system` column: the conversation's system prompt
        if not isinstance(system, str):
            raise RowProblem("wrong_type", f"'system' is {kind(system)}, expected a string")
        if system.strip() and isinstance(turns, list):
            turns = [{"role": "system", "content": system}, *turns]
    result = conversation(turns, key)
    if len(record) > 1:
        name = "tools" if "tools" in record else "functions"
        result.tools = normalize_tools(record.get(name), name)
    return result


def _prompt_completion(record: dict[str, Any]) -> Conversation:
    prompt, completion, tools = record.get("prompt"), record.get("completion"), record.get("tools")
    if isinstance(prompt, dict):  # OpenAI preference `input`: {"messages": [...], "tools": [...]}
        if "messages" not in prompt:
            raise RowProblem("wrong_type", "'prompt' is an object without a 'messages' list")
        prompt, tools = prompt["messages"], prompt.get("tools", tools)
    if isinstance(completion, dict):  # one message, as LLaMA-Factory's and axolotl's `chosen`
        completion = [completion]
    for name, value in (("prompt", prompt), ("completion", completion)):
        if value is None:
            raise RowProblem("missing_field", f"'{name}' is missing or null")
        if not isinstance(value, list):
            raise RowProblem(
                "wrong_type",
                f"'{name}' is {kind(value)} while the other is a message list; give both as message lists "
                "(conversational) or both as strings",
            )
    result = conversation(prompt, "prompt")
    answer = conversation(completion, "completion")
    if "assistant" not in answer.roles:
        raise RowProblem("no_assistant_turn", "the completion has no assistant turn to learn from")
    # Only the completion trains (TRL's completion-only loss): answers inside the prompt are context.
    result.messages = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in result.messages]
    result.weighted = result.weighted or "assistant" in result.roles
    result.extend(answer)
    result.tools = normalize_tools(tools, "tools")
    return result


def normalize_tools(value: Any, where: str) -> list[dict[str, Any]] | None:
    """Tool definitions as `{"type": "function", "function": {...}}`: from a list or a JSON string of
    one (glaive, LLaMA-Factory), bare `{name, description, parameters}` definitions wrapped; none → None."""
    value = parse_json_field(value, where)
    if value is None or value == [] or value == "":
        return None
    if not isinstance(value, list):
        raise RowProblem("wrong_type", f"'{where}' is {kind(value)}, expected a list of function definitions")
    tools = []
    for n, tool in enumerate(value):
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RowProblem("wrong_type", f"{where}[{n}] is not a function definition with a 'name'")
        tools.append({"type": "function", "function": function})
    return tools


def instruction_messages(record: dict[str, Any]) -> list[dict[str, Any]]:
    """An instruction row's conversation: optional system, the `history` pairs, then instruction → output."""
    messages: list[dict[str, Any]] = []
    system = record.get("system")
    if system:
        messages.append({"role": "system", "content": system})
    for question, answer in record.get("history") or ():
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    prompt = record["instruction"]
    if record.get("input"):
        prompt = f"{prompt}\n\n{record['input']}"
    return messages + [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]


def check_instruction(record: dict[str, Any]) -> None:
    """LLaMA-Factory's `system` (a string) and `history` (a list of [question, answer] string pairs)."""
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        raise RowProblem("wrong_type", f"'system' is {kind(system)}, expected a string")
    history = record.get("history")
    if history is None:
        return
    if not isinstance(history, list):
        raise RowProblem("wrong_type", f"'history' is {kind(history)}, expected a list of [question, answer] pairs")
    for n, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise RowProblem("wrong_type", f"history[{n}] is not a [question, answer] pair of strings")
        if not pair[0].strip() or not pair[1].strip():
            raise RowProblem("blank_content", f"history[{n}] has an empty question or answer")


def to_messages(record: dict[str, Any], fmt: str) -> list[dict[str, Any]]:
    """Chat messages of a row that passed its contract (types already checked)."""
    if fmt == "instruction":
        return instruction_messages(record)
    if fmt == "prompt_completion" and not is_conversational(record):
        return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}]
    if fmt in ("chat", "sharegpt", "prompt_completion"):
        return chat_shape(record, fmt).messages
    raise ValueError(f"format {fmt!r} has no chat messages")
