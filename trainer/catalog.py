"""The base model architectures the configuration guide names, plus the local demo model.

Pure data, no heavy imports: the CLI's `models` command and settings validation read it in
milliseconds. Parameter counts are the published totals (embeddings included); they feed the
memory estimate and the MFU figure, so keep them exact rather than rounded to the marketing name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trainer.memory import ModelShape

LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
FALCON_TARGETS = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")


@dataclass(frozen=True)
class Architecture:
    key: str
    display_name: str
    hub_id: str | None  # None: built locally, never downloaded
    params_billion: float
    family: str
    lora_target_modules: tuple[str, ...]
    chat_template: str  # what the tokenizer ships, and what we do about it
    supports_system_role: bool
    gated: bool  # needs HF_TOKEN and an accepted licence on the hub
    use_case: str
    shape: ModelShape  # the published config's dimensions, for the memory estimate and MFU
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def weights_gib(self, bits: int) -> float:
        """Memory of the frozen base weights alone at `bits` per parameter."""
        return self.params_billion * 1e9 * bits / 8 / 2**30


ARCHITECTURES: dict[str, Architecture] = {
    a.key: a
    for a in (
        Architecture(
            key="llama-3.1-8b-instruct",
            display_name="LLaMA 3.1 8B Instruct",
            hub_id="meta-llama/Llama-3.1-8B-Instruct",
            params_billion=8.03,
            family="llama",
            lora_target_modules=LLAMA_TARGETS,
            chat_template="ships one (<|start_header_id|>role<|end_header_id|> ... <|eot_id|>)",
            supports_system_role=True,
            gated=True,
            use_case="Chatbot, RAG assistant, summarizer",
            shape=ModelShape(8.03e9, hidden=4096, layers=32, intermediate=14336, vocab=128256, heads=32, kv_heads=8, tied_embeddings=False),
            aliases=("llama-3.1-8b", "llama3.1-8b-instruct", "llama 3.1 8b instruct", "llama 3.1 8b"),
        ),
        Architecture(
            key="mistral-7b",
            display_name="Mistral 7B Instruct v0.3",
            hub_id="mistralai/Mistral-7B-Instruct-v0.3",
            params_billion=7.25,
            family="mistral",
            lora_target_modules=LLAMA_TARGETS,
            chat_template="ships one ([INST] ... [/INST]); a system turn is folded into the last user turn",
            supports_system_role=False,
            gated=True,
            use_case="Small efficient assistant or coder",
            shape=ModelShape(7.25e9, hidden=4096, layers=32, intermediate=14336, vocab=32768, heads=32, kv_heads=8, tied_embeddings=False),
            aliases=("mistral 7b", "mistral-7b-instruct"),
        ),
        Architecture(
            key="gemma",
            display_name="Gemma 2 2B IT",
            hub_id="google/gemma-2-2b-it",
            params_billion=2.61,
            family="gemma2",
            lora_target_modules=LLAMA_TARGETS,
            chat_template="ships one (<start_of_turn>user ... <end_of_turn>); no system role",
            supports_system_role=False,
            gated=True,
            use_case="Lightweight open-source assistant",
            shape=ModelShape(2.61e9, hidden=2304, layers=26, intermediate=9216, vocab=256000, heads=8, kv_heads=4, tied_embeddings=True),
            aliases=("gemma-2-2b-it", "gemma 2b"),
        ),
        Architecture(
            key="openchat",
            display_name="OpenChat 3.5 (0106)",
            hub_id="openchat/openchat-3.5-0106",
            params_billion=7.24,
            family="mistral",
            lora_target_modules=LLAMA_TARGETS,
            chat_template="ships one (GPT4 Correct User: ... <|end_of_turn|>GPT4 Correct Assistant:)",
            supports_system_role=False,
            gated=False,
            use_case="Lightweight open-source assistant",
            shape=ModelShape(7.24e9, hidden=4096, layers=32, intermediate=14336, vocab=32002, heads=32, kv_heads=8, tied_embeddings=False),
            aliases=("openchat-3.5",),
        ),
        Architecture(
            key="falcon-7b",
            display_name="Falcon 7B Instruct",
            hub_id="tiiuae/falcon-7b-instruct",
            params_billion=6.92,
            family="falcon",
            lora_target_modules=FALCON_TARGETS,
            chat_template="none shipped: the pipeline applies its default template (User:/Assistant:)",
            supports_system_role=True,
            gated=False,
            use_case="General instruction following",
            shape=ModelShape(6.92e9, hidden=4544, layers=32, intermediate=18176, vocab=65024, heads=71, kv_heads=1, tied_embeddings=True),
            aliases=("falcon", "falcon 7b"),
        ),
        Architecture(
            key="llama-13b",
            display_name="LLaMA 2 13B Chat",
            hub_id="meta-llama/Llama-2-13b-chat-hf",
            params_billion=13.02,
            family="llama",
            lora_target_modules=LLAMA_TARGETS,
            chat_template="ships one ([INST] <<SYS>> ... <</SYS>> ... [/INST])",
            supports_system_role=True,
            gated=True,
            use_case="Long, specific documents (legal)",
            shape=ModelShape(13.02e9, hidden=5120, layers=40, intermediate=13824, vocab=32000, heads=40, kv_heads=40, tied_embeddings=False),
            aliases=("llama 13b", "llama-2-13b-chat"),
        ),
        Architecture(
            key="tiny-llama",
            display_name="Tiny LLaMA (local demo model)",
            hub_id=None,
            params_billion=0.00105,
            family="llama",
            lora_target_modules=LLAMA_TARGETS,
            chat_template="built with the model: <|start|>role\\n ... <|end|>",
            supports_system_role=True,
            gated=False,
            use_case="Demo and tests: built locally from the bundled data, no download",
            shape=ModelShape(1.05e6, hidden=128, layers=4, intermediate=384, vocab=2048, heads=4, kv_heads=2, tied_embeddings=True),
            aliases=("tiny",),
        ),
    )
}


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


_LOOKUP = {
    _norm(n): a.key
    for a in ARCHITECTURES.values()
    for n in (a.key, a.display_name, *a.aliases)
}


def resolve_architecture_key(name: str) -> str | None:
    """Map a key, display name or alias ("LLaMA 3.1 8B Instruct") to the catalog key, or None."""
    return _LOOKUP.get(_norm(name))


def get_architecture(name: str) -> Architecture:
    key = resolve_architecture_key(name)
    if key is None:
        raise KeyError(name)
    return ARCHITECTURES[key]
