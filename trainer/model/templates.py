"""What a model's chat template does with a conversation, and where each answer lands in it.

Chat templates are not uniform (docs/data-contracts.md, "Chat templates"): Gemma raises on a system
turn, Mistral v0.3 drops it unless the conversation ends with the user, Qwen3 adds `<think>` scaffolding
to the last answer only, Falcon ends a turn with nothing, Llama 2 writes ` answer </s><s>[INST]`. So
nothing here assumes that rendering a prefix of a conversation gives a prefix of the whole.

**Facts** (`TemplateFacts`): whether the template has a system role, what closes an assistant turn,
whether it renders tool calls. From the catalog when the tokenizer's template is, byte for byte, one
the catalog describes (its sha256); otherwise (a local model folder may hold any model) derived by
rendering probe conversations: a system prompt that raises or vanishes means no system role; the text
both answers of a two-turn probe are followed by, cut back to a token boundary, is the end of turn
(none: eos is trained after the last answer); a probe tool call whose name shows up means tools are
rendered.

**Where the answers are** (`render_for_training`): the conversation is rendered once as it is, and
once with every message's text replaced by a numbered placeholder. The second rendering is the
template's own text around the messages (its *skeleton*); matched against the first (the skeleton's
pieces as literals, the messages' texts as the gaps between them), it gives each message's text as the
template rendered it (stripped, rewritten) at its character offsets. An answer found this way can't be
confused with the same words in a user turn, and the template's scaffolding (headers, `[INST]`,
`<think></think>`, role names) is never inside a gap. A trained span is the answer plus the end of
turn that follows it (only whitespace between).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass

from trainer.config.catalog import architecture_for_template
from trainer.errors import TemplateRenderError, TemplateTimeoutError
from trainer.model import turn_parts
from trainer.model.deadline import DeadlineExceeded, within
from trainer.model.turn_parts import LONG_ID, SHORT_ID_LENGTH, ids_fit, turn_end, with_derived_ids

_PLACEHOLDER = "QzqX{}XqzQ"  # survives strip/trim/tojson and never occurs in real text
_PLACEHOLDER_RE = re.compile(r"QzqX(\d+)XqzQ")
_PROBE_TOOL = "llm_trainer_probe_tool"
_LITERAL_PLACEHOLDER = re.compile(r"(?<!\{)\{[A-Za-z_][A-Za-z0-9_]*\}(?!\})")  # `{system_message}`, not `{{x}}`
_CACHE_LIMIT = 20_000  # skeletons kept per process (a dataset has few conversation shapes)
RENDER_SECONDS = 10.0  # the bound on rendering one conversation; docs/security.md


@dataclass(frozen=True)
class TemplateFacts:
    supports_system_role: bool  # False: the system prompt is folded into the first user turn
    end_of_turn: tuple[str, ...]  # what closes an assistant turn; () = nothing (eos is trained after the last answer)
    supports_tools: bool
    source: str  # "catalog:<key>" or "derived"
    # Literal `{name}` placeholders the template itself writes into a conversation (unsloth's Llama 3.1
    # template writes `{system_message}` when a row has no system prompt): the model would learn them.
    placeholders: tuple[str, ...] = ()
    # The length the template demands of tool-call ids (Mistral v0.3: 9 alphanumeric characters), found by
    # rendering a probe call with an OpenAI-style id; None when any id renders.
    tool_call_id_length: int | None = None


@dataclass(frozen=True)
class RenderedConversation:
    text: str  # what is tokenized (with add_special_tokens=False: the template writes bos itself)
    spans: list[tuple[int, int]]  # character spans to train, in order: each answer and its end of turn
    folded_system: bool  # the system prompt was folded into the first user turn
    derived_tool_ids: bool = False  # tool-call ids were replaced by ones of the length the template demands


@dataclass(frozen=True)
class _Skeleton:
    pieces: tuple[str, ...]  # the template's own text: before the first message text, between, after the last
    order: tuple[int, ...]  # the message index of each gap, in rendered order
    pattern: re.Pattern


_TEXT_PARTS: dict[tuple, bool] = {}  # template key -> reads_text_parts
_FACTS: dict[tuple, TemplateFacts] = {}
_SKELETONS: dict[tuple, _Skeleton] = {}


def _template_key(tokenizer) -> tuple[str, str | None, str | None]:
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise TemplateRenderError("the tokenizer has no chat template")
    text = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
    # Line endings as \n: a template saved as chat_template.jinja comes back without its \r (Falcon's
    # has one), and Jinja renders both alike.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), tokenizer.bos_token, tokenizer.eos_token


def template_facts(tokenizer) -> TemplateFacts:
    """The facts of the tokenizer's chat template: the catalog's when it knows the template, else derived."""
    key = _template_key(tokenizer)
    facts = _FACTS.get(key)
    if facts is None:
        arch = architecture_for_template(key[0])
        if arch is not None:
            facts = TemplateFacts(
                arch.supports_system_role, arch.end_of_turn, arch.supports_tools, f"catalog:{arch.key}"
            )
        else:
            facts = derive_facts(tokenizer)
        if facts.supports_tools:
            facts = dataclasses.replace(facts, tool_call_id_length=_required_id_length(tokenizer))
        _FACTS[key] = facts
    return facts


def _required_id_length(tokenizer) -> int | None:
    """9 when the template refuses an OpenAI-style tool-call id but renders a 9-character one, else None."""

    def probe(call_id: str) -> bool:
        call = {"id": call_id, "type": "function", "function": {"name": _PROBE_TOOL, "arguments": {"x": "1"}}}
        turns = [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "name": _PROBE_TOOL, "content": "1"},
            {"role": "assistant", "content": "a"},
        ]
        return _renders(tokenizer, turns, None, [_PROBE_TOOL])

    if probe(LONG_ID) or not probe("A" * SHORT_ID_LENGTH):
        return None
    return SHORT_ID_LENGTH


def apply_template(tokenizer, messages: list[dict], tools: list | None = None, generation_prompt: bool = False) -> str:
    """The template's rendering, or TemplateRenderError carrying the template's own message, or
    TemplateTimeoutError past RENDER_SECONDS (a template is a program); text as parts where it reads only those."""
    if reads_text_parts(tokenizer):
        messages = turn_parts.as_text_parts(messages)
    return _render(tokenizer, messages, tools, generation_prompt)


def reads_text_parts(tokenizer) -> bool:
    """A template that writes text only from a list of parts (Idefics3, LLaVA-NeXT: Jinja iterates a
    string's characters and writes nothing), found once per template by rendering a probe both ways."""
    key = _template_key(tokenizer)
    if key not in _TEXT_PARTS:
        turns = [{"role": "user", "content": _PLACEHOLDER.format(0)}, {"role": "assistant", "content": "probe"}]
        wrote = []  # the placeholder written from a string, from a text part
        for probe in (turns, turn_parts.as_text_parts(turns)):
            try:
                wrote.append(_PLACEHOLDER.format(0) in _render(tokenizer, probe, None, False))
            except TemplateRenderError:
                wrote.append(False)
        _TEXT_PARTS[key] = wrote == [False, True]
    return _TEXT_PARTS[key]


def _render(tokenizer, messages: list[dict], tools: list | None, generation_prompt: bool) -> str:
    from jinja2 import TemplateError  # a transformers dependency, imported with it

    try:
        with within(RENDER_SECONDS):
            return tokenizer.apply_chat_template(
                messages, tools=tools or None, tokenize=False, add_generation_prompt=generation_prompt
            )
    except DeadlineExceeded:
        raise TemplateTimeoutError(
            f"the chat template did not finish rendering one conversation of {len(messages)} messages in "
            f"{RENDER_SECONDS:.0f} s (real templates take milliseconds): fix the template, or use another model's"
        ) from None
    # OverflowError: the sandbox refuses a range past 100,000; RecursionError: a macro calling itself.
    except (
        TemplateError,
        TypeError,
        ValueError,
        KeyError,
        AttributeError,
        IndexError,
        OverflowError,
        RecursionError,
    ) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TemplateRenderError(f"the chat template can't render this row: {first}") from None


def derive_facts(tokenizer) -> TemplateFacts:
    """Facts found by rendering probe conversations (for templates the catalog does not know)."""
    p = _PLACEHOLDER.format
    turns = [
        {"role": "user", "content": p(0)},
        {"role": "assistant", "content": p(1)},
        {"role": "user", "content": p(2)},
        {"role": "assistant", "content": p(3)},
    ]
    end_of_turn: tuple[str, ...] = ()
    placeholders: set[str] = set()
    try:
        rendered = apply_template(tokenizer, turns)
        placeholders.update(_LITERAL_PLACEHOLDER.findall(rendered))
        parts = _PLACEHOLDER_RE.split(rendered)
        after = dict(zip((int(i) for i in parts[1::2]), parts[2::2], strict=True))
        common = turn_end(tokenizer, after[1], after[3])
        end_of_turn = (common,) if common else ()
    except (TemplateRenderError, KeyError, ValueError):
        pass
    system = [{"role": "system", "content": p(4)}, *turns[:2]]
    call = {"id": "probe0001", "type": "function", "function": {"name": _PROBE_TOOL, "arguments": {"x": "1"}}}
    tool_turns = [
        turns[0],
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "probe0001", "name": _PROBE_TOOL, "content": p(5)},
        turns[1],
    ]
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    tools = [{"type": "function", "function": {"name": _PROBE_TOOL, "description": "probe", "parameters": schema}}]
    return TemplateFacts(
        supports_system_role=_renders(tokenizer, system, None, [p(4), p(1)]),
        end_of_turn=end_of_turn,
        supports_tools=_renders(tokenizer, tool_turns, tools, [_PROBE_TOOL, p(5), p(1)]),
        source="derived",
        placeholders=tuple(sorted(placeholders)),
    )


def _renders(tokenizer, messages: list[dict], tools: list | None, expected: list[str]) -> bool:
    try:
        text = apply_template(tokenizer, messages, tools)
    except TemplateRenderError:
        return False
    return all(s in text for s in expected)


def _trained(message: dict) -> bool:
    return message["role"] == "assistant" and message.get("weight", 1) != 0


def prepare_messages(messages: list[dict], facts: TemplateFacts, tools: list | None) -> tuple[list[dict], bool]:
    """The messages as the template gets them: our `weight` key removed, and the system prompt folded
    into the first user turn (joined by a blank line) when the template has no system role. Returns
    (messages, folded). Tool calls on a template that does not render them raise TemplateRenderError."""
    if not facts.supports_tools and (tools or any(m.get("tool_calls") or m["role"] == "tool" for m in messages)):
        raise TemplateRenderError(
            "this model's chat template does not render tool calls or tool results; train tool use on a model "
            "whose template does (e.g. llama-3.1-8b-instruct, mistral-7b)"
        )
    clean = [{k: ("" if k == "content" and v is None else v) for k, v in m.items() if k != "weight"} for m in messages]
    if facts.tool_call_id_length and not ids_fit(clean, facts.tool_call_id_length):
        clean = with_derived_ids(clean, facts.tool_call_id_length)
    if not clean or clean[0]["role"] != "system" or facts.supports_system_role:
        return clean, False
    system, rest = clean[0], clean[1:]
    first_user = next((i for i, m in enumerate(rest) if m["role"] == "user"), None)
    if first_user is None:
        raise TemplateRenderError("this model's chat template has no system role and the row has no user turn")
    rest[first_user] = {**rest[first_user], "content": f"{system['content']}\n\n{rest[first_user]['content']}"}
    return rest, True


def render_prompt(tokenizer, messages: list[dict], generation_prompt: bool = False, tools: list | None = None) -> str:
    """The conversation as the model sees it (system prompt folded where the template has no system role)."""
    prepared, _ = prepare_messages(messages, template_facts(tokenizer), tools)
    return apply_template(tokenizer, prepared, tools, generation_prompt)


def _skeleton(tokenizer, messages: list[dict], tools: list | None, generation_prompt: bool = False) -> _Skeleton:
    masked = [
        {**m, "content": _PLACEHOLDER.format(i)} if isinstance(m.get("content"), str) and m["content"] else m
        for i, m in enumerate(messages)
    ]
    key = (_template_key(tokenizer), generation_prompt, json.dumps([masked, tools], sort_keys=True, default=str))
    if key in _SKELETONS:
        return _SKELETONS[key]
    parts = _PLACEHOLDER_RE.split(apply_template(tokenizer, masked, tools, generation_prompt))
    pieces, order = tuple(parts[0::2]), tuple(int(i) for i in parts[1::2])
    if len(set(order)) != len(order):
        raise TemplateRenderError("the chat template writes a message's text twice; can't tell which one is trained")
    if any(not piece for piece in pieces[1:-1]):
        raise TemplateRenderError("the chat template writes two messages with nothing between them")
    shape = _Skeleton(pieces, order, re.compile("(.*?)".join(map(re.escape, pieces)), re.DOTALL))
    if len(_SKELETONS) >= _CACHE_LIMIT:
        _SKELETONS.clear()
    _SKELETONS[key] = shape
    return shape


def render_for_training(tokenizer, messages: list[dict], tools: list | None = None) -> RenderedConversation:
    """The conversation rendered once, with the character spans of its trained answers (see the module doc).

    Raises TemplateRenderError when the template raises, leaves out or repeats a message, renders its
    text in a way that changes with the text (then the answers can't be told from the scaffolding), or
    can't render tool calls."""
    facts = template_facts(tokenizer)
    prepared, folded = prepare_messages(messages, facts, tools)
    shift = 1 if folded else 0  # prepared[i] is messages[i + shift]
    text = apply_template(tokenizer, prepared, tools)
    shape = _skeleton(tokenizer, prepared, tools)
    match = shape.pattern.fullmatch(text)
    if match is None:
        raise TemplateRenderError(
            "the chat template renders this row differently from its shape (its output changes with the text), "
            "so the answers can't be told from the template's own text"
        )
    where = {index: match.span(group) for group, index in enumerate(shape.order, start=1)}
    for i, message in enumerate(prepared):
        # A tool-calling turn's own text may be dropped: _tool_call_span decides about it.
        if (
            isinstance(message.get("content"), str)
            and message["content"]
            and i not in where
            and not message.get("tool_calls")
        ):
            raise TemplateRenderError(f"the chat template leaves out messages[{i + shift}] ({message['role']})")
    spans = []
    for i, message in enumerate(prepared):
        if not _trained(messages[i + shift]):
            continue
        if message.get("tool_calls"):
            spans.append(_tool_call_span(tokenizer, prepared, i, tools, shape, where, text, facts, shift))
        elif i in where:
            start, end = where[i]
            if text[start:end].split() != message["content"].split():
                # Stripping and re-spacing is fine; anything else (Qwen3 cutting `<think>` reasoning out
                # of an answer) would train on text the row does not hold.
                raise TemplateRenderError(f"the chat template rewrites the answer in messages[{i + shift}]")
            spans.append((start, turn_parts.through_end_of_turn(text, end, facts.end_of_turn)))
        else:
            raise TemplateRenderError(f"messages[{i + shift}] is an assistant turn with no text and no tool calls")
    spans.sort()  # in rendered order, which a template may change
    if not facts.end_of_turn and spans and _trained(messages[-1]) and tokenizer.eos_token:
        # No end-of-turn token (Falcon): the model learns to stop from eos after the last answer only.
        # Adding it after earlier answers would train on a context the template never produces. A
        # template that writes eos after the last answer itself (gpt-oss's `<|return|>`) gets it
        # trained where it is, not a second time.
        end = spans[-1][1]
        tail = text[end:]
        if tail.lstrip().startswith(tokenizer.eos_token):
            end += len(tail) - len(tail.lstrip()) + len(tokenizer.eos_token)
        elif not tail.strip():
            text += tokenizer.eos_token
            end = len(text)
        spans[-1] = (spans[-1][0], end)
    derived = bool(facts.tool_call_id_length) and not ids_fit(messages, facts.tool_call_id_length)
    return RenderedConversation(text, spans, folded, derived)


def _tool_call_span(
    tokenizer,
    prepared: list[dict],
    i: int,
    tools: list | None,
    shape: _Skeleton,
    where: dict[int, tuple[int, int]],
    text: str,
    facts: TemplateFacts,
    shift: int,
) -> tuple[int, int]:
    """A tool-calling turn's span: what the model writes after the generation prompt (its text, if the
    template writes it, and the rendered calls) through the end of turn."""
    if i in where:  # the template writes the turn's text before the calls (Qwen3)
        start, search_from = where[i][0], where[i][1]
    elif prepared[i].get("content"):
        raise TemplateRenderError(
            f"this model's chat template drops the text of an assistant turn that calls tools (messages[{i + shift}])"
        )
    else:
        start = search_from = _generation_start(tokenizer, prepared, i, tools, shape, where)
    later = [span[0] for span in where.values() if span[0] >= search_from]
    limit = min(later, default=len(text))
    found = [(text.find(m, search_from, limit), m) for m in facts.end_of_turn if m]
    found = [(pos, m) for pos, m in found if pos >= 0]
    if not found:
        raise TemplateRenderError(f"can't find where the tool call of messages[{i + shift}] ends (no end of turn)")
    pos, marker = min(found)
    end = pos + len(marker)
    names = [(call.get("function") or {}).get("name") for call in prepared[i]["tool_calls"]]
    if not all(isinstance(name, str) and name and name in text[start:end] for name in names):
        raise TemplateRenderError("this model's chat template does not render tool calls")
    return start, end


def _generation_start(
    tokenizer, prepared: list[dict], i: int, tools: list | None, shape: _Skeleton, where: dict[int, tuple[int, int]]
) -> int:
    """Where turn i starts in the full rendering: after the generation prompt the template writes when
    the conversation before it is rendered for generation (only the text after the last message of that
    rendering is used, so the template may place other things, e.g. a tools list, differently)."""
    prompt = _skeleton(tokenizer, prepared[:i], tools, generation_prompt=True)
    tail = prompt.pieces[-1]
    anchor, piece = 0, shape.pieces[0]
    if prompt.order:
        last = prompt.order[-1]
        anchor, piece = (where[last][1], shape.pieces[shape.order.index(last) + 1]) if last in where else (0, None)
    if piece is None or not piece.startswith(tail):
        raise TemplateRenderError("can't find where the assistant's tool call starts in the rendered conversation")
    return anchor + len(tail)


def template_warnings(tokenizer) -> list[str]:
    """What the user should know about the template before training on it (one line each)."""
    facts = template_facts(tokenizer)
    return [
        f"the chat template writes {name} literally into conversations (at least those without a system prompt): "
        "the model would learn that text; give every row a system prompt or fix the template"
        for name in facts.placeholders
    ]
