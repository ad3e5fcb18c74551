"""Tokenizers built from the real chat templates in tests/fixtures/templates/, offline.

Each fixture holds a model's verbatim `chat_template` and its special tokens. We train a small
byte-level BPE on a little text (no download), add the model's special tokens as special tokens,
set bos/eos/pad/unk and the template as the real `tokenizer_config.json` does, `save_pretrained`
it and load it back through `AutoTokenizer.from_pretrained`, exactly as a real model folder is
loaded. The vocabulary is not the model's, but every string the template writes, every special
token and every offset is real, which is what the loss mask depends on.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "templates"

# Fixture file -> the catalog key it is the template of (None: an extra real-world case).
TEMPLATES = {
    "llama-3.1-8b-instruct": "llama-3.1-8b-instruct",
    "mistral-7b-instruct-v0.3": "mistral-7b",
    "gemma-2-2b-it": "gemma",
    "openchat-3.5-0106": "openchat",
    "falcon-7b-instruct": "falcon-7b",
    "llama-2-13b-chat": "llama-13b",
    "mistral-7b-instruct-v0.1": None,
    "qwen3": None,
    "llama-3-8b-instruct": None,
    "zephyr-7b-beta": None,
}
CATALOG_TEMPLATES = [name for name, key in TEMPLATES.items() if key is not None]
# Templates with no system role (they raise, or drop it): the system prompt is folded into the first user turn.
FOLDS_SYSTEM = {"gemma-2-2b-it", "mistral-7b-instruct-v0.3"}
# One tool definition, in the JSON-schema shape chat templates render.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
# Templates that strip the whitespace around an answer.
STRIPS = {
    "llama-3.1-8b-instruct",
    "llama-3-8b-instruct",
    "gemma-2-2b-it",
    "falcon-7b-instruct",
    "llama-2-13b-chat",
    "mistral-7b-instruct-v0.3",
}

# Text the BPE learns its merges from: ordinary sentences, the templates' own words, and the
# awkward answer starts the tests use (so merges across `]`, `<`, `.` and spaces exist).
_CORPUS = [
    "What is 2+2? 2+2 equals 4. And 3+3? 3+3 equals 6.",
    "You are a helpful assistant. Answer briefly and politely.",
    "Where is my refund? Your refund was sent on Monday and should arrive within five days.",
    "[INST] <<SYS>> <</SYS>> [/INST] User: Assistant: GPT4 Correct User: GPT4 Correct Assistant:",
    "<b>bold</b> <tag> [/INST]<b> [/INST]<b>A</b> ...and so on. .5 percent, <html> </html>",
    "Cutting Knowledge Date: December 2023 Today Date: 26 Jul 2024",
    "get_weather city Paris arguments parameters name function call result 18 degrees",
    "Café, naïve, 東京, emoji 🙂 and ünïcödé text.",
]


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def _specials(spec: dict) -> list[str]:
    names = [spec.get(k) for k in ("bos_token", "eos_token", "pad_token", "unk_token")]
    return list(dict.fromkeys([n for n in names if n] + spec["additional_special_tokens"]))


def build_tokenizer_folder(name: str, folder: Path, version: int | None = None) -> Path:
    """Save a tokenizer with the fixture's template and special tokens to `folder` (a model folder);
    `version` picks one of the fixture's `previous_versions` of the template instead of the current one."""
    spec = fixture(name)
    if version is not None:
        spec = {**spec, "chat_template": spec["previous_versions"][version]["chat_template"]}
    return save_tokenizer(spec, folder)


def save_tokenizer(spec: dict, folder: Path) -> Path:
    """A model folder holding a small BPE with `spec`'s special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = _specials(spec)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    bos = spec.get("bos_token")
    if bos and spec.get("add_bos_token") is not False:
        # Like the real tokenizer.json: BOS is prepended when add_special_tokens=True (the double-BOS trap).
        bpe.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bpe.token_to_id(bos))]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=bos,
        eos_token=spec.get("eos_token"),
        pad_token=spec.get("pad_token"),
        unk_token=spec.get("unk_token"),
        additional_special_tokens=spec["additional_special_tokens"],
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = spec["chat_template"]
    tokenizer.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    return folder


# The templates TRL, axolotl and unsloth publish (tests/fixtures/templates/published/, verbatim; see
# its README). Their models' bos and eos, by file name (first match wins); the other special tokens
# are the token-shaped strings the template writes (`<|im_end|>`, `<｜User｜>`, `[|endofturn|]`,
# `<end_of_turn>`), added as special tokens as the real tokenizers have them.
PUBLISHED = FIXTURES / "published"
_FAMILY_TOKENS = [
    ("llama3_2_vision", "<|begin_of_text|>", "<|eot_id|>"),
    ("llama3", "<|begin_of_text|>", "<|eot_id|>"),
    ("llama4", "<|begin_of_text|>", "<|eot|>"),
    ("phi3", "<s>", "<|endoftext|>"),
    ("phi_3", "<s>", "<|endoftext|>"),
    ("phi4", "<|endoftext|>", "<|im_end|>"),
    ("phi_4", "<|endoftext|>", "<|im_end|>"),
    ("gemma4", "<bos>", "<eos>"),
    ("diffusion_gemma", "<bos>", "<eos>"),
    ("gemma_chatml", "<bos>", "<|im_end|>"),
    ("gemma", "<bos>", "<eos>"),
    ("deepseek", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("cohere", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    ("aya", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    ("command_a", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    ("gptoss", "<|startoftext|>", "<|return|>"),
    ("lfm2", "<|startoftext|>", "<|im_end|>"),
    ("liquid_lfm2", "<|startoftext|>", "<|im_end|>"),
    ("jamba", "<|startoftext|>", "<|endoftext|>"),
    ("yi_chat", "<|startoftext|>", "<|im_end|>"),
    ("exaone", "[BOS]", "[|endofturn|]"),
    ("glm4moe", "[gMASK]", "<|endoftext|>"),
    ("idefics3", "<|begin_of_text|>", "<end_of_utterance>"),
    ("starling", "<s>", "<|end_of_turn|>"),
    ("qwen", None, "<|im_end|>"),
    ("chatml", "<s>", "<|im_end|>"),
    ("nemotron", "<s>", "<|im_end|>"),
    ("falcon_h1", "<|begin_of_text|>", "<|im_end|>"),
    ("", "<s>", "</s>"),  # Mistral, Llama 2, Zephyr, Vicuna, Alpaca, Pixtral, LLaVA, Metharme, unsloth's own
]
_TOKEN_SHAPED = re.compile(
    r"<\|[A-Za-z_][\w.]*\|>|<｜[^｜<>\s]+｜>|\[\|[a-z_]+\|\]|<(?:start|end)_of_turn>|<end_of_utterance>"
)


def published_templates() -> list[Path]:
    """Every published template file, once per distinct text (TRL and unsloth share a few)."""
    seen, files = set(), []
    for path in sorted(PUBLISHED.glob("*/*.jinja")):
        text = path.read_text(encoding="utf-8")
        if text not in seen:
            seen.add(text)
            files.append(path)
    return files


def published_spec(path: Path) -> dict:
    stem = path.stem
    _, bos, eos = next(entry for entry in _FAMILY_TOKENS if stem.startswith(entry[0]))
    text = path.read_text(encoding="utf-8")
    shaped = sorted(set(_TOKEN_SHAPED.findall(text)) - {bos, eos})
    return {
        "chat_template": text,
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": None,
        "unk_token": None,
        "additional_special_tokens": shaped,
        "add_bos_token": False,
    }


@cache
def _built(name: str, root: str) -> Path:
    return build_tokenizer_folder(name, Path(root) / name)


def template_folder(name: str, root: Path) -> Path:
    """The fixture's tokenizer folder under `root`, built once per root."""
    return _built(name, str(root))


def load_template_tokenizer(name: str, root: Path):
    """The fixture's tokenizer, loaded as the pipeline loads a model's tokenizer."""
    from trainer.model.loading import load_tokenizer

    return load_tokenizer(template_folder(name, root))


def closing(name: str, last: bool) -> str:
    """What is trained after an answer: the template's end of turn, read from the fixture's render facts
    (the text after the final answer, trailing whitespace aside); eos after the last answer when the
    template has none (Falcon)."""
    spec = fixture(name)
    after = spec["render_facts"]["text_after_final_answer"].rstrip()
    if not after and last:
        return spec["eos_token"]
    return after


def check_trained(name: str, runs: list[str], answers: list[str], merged: str = " ") -> None:
    """Each trained run is one answer as the template renders it plus its end of turn; the only extra
    allowed is one character the tokenizer merged into the answer's first token (`merged`)."""
    assert len(runs) == len(answers), runs
    for i, (run, answer) in enumerate(zip(runs, answers, strict=True)):
        expected = (answer.strip() if name in STRIPS else answer) + closing(name, last=i == len(answers) - 1)
        assert run.endswith(expected), (run, expected)
        extra = run[: len(run) - len(expected)]
        assert len(extra) <= 1 and set(extra) <= set(merged), (run, expected)
