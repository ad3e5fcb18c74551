"""The base model architectures the configuration guide names, plus the local demo model.

Pure data, no heavy imports: the CLI's `models` command and settings validation read it in
milliseconds. Parameter counts are the published totals (embeddings included); they feed the
memory estimate and the MFU figure, so keep them exact rather than rounded to the marketing name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelShape:
    params: float
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tied_embeddings: bool

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def linear_params(self) -> float:
        return self.params - self.embedding_params

    def lora_params(self, rank: int, targets: set[str]) -> int:
        h, kv, ffn = self.hidden, self.kv_dim, self.intermediate
        shapes = {
            "q_proj": (h, h),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (h, h),
            "gate_proj": (h, ffn),
            "up_proj": (h, ffn),
            "down_proj": (ffn, h),
            # Falcon's fused projections
            "query_key_value": (h, h + 2 * kv),
            "dense": (h, h),
            "dense_h_to_4h": (h, ffn),
            "dense_4h_to_h": (ffn, h),
        }
        if "all-linear" in targets:
            targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
        return self.layers * sum(rank * (i + o) for name, (i, o) in shapes.items() if name in targets)


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
    # The chat-template facts the completion-only loss mask uses (trainer/model/templates.py). They
    # describe the templates whose sha256 is in `template_sha256` (the hub's text with line endings as
    # \n, since a saved .jinja file loses \r; older versions too when they behave alike); a tokenizer
    # with any other template has its facts derived by rendering probe conversations.
    # tests/integration/test_templates.py checks both against the real template text.
    supports_system_role: bool  # False: the system prompt is folded into the first user turn
    end_of_turn: tuple[str, ...]  # what closes an assistant turn (trained with it); () = nothing: eos is added
    supports_tools: bool  # renders tool calls and tool results
    template_sha256: tuple[str, ...]
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
            end_of_turn=("<|eot_id|>", "<|eom_id|>"),
            supports_tools=True,
            template_sha256=("e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65",),
            gated=True,
            use_case="Chatbot, RAG assistant, summarizer",
            shape=ModelShape(
                8.03e9,
                hidden=4096,
                layers=32,
                intermediate=14336,
                vocab=128256,
                heads=32,
                kv_heads=8,
                tied_embeddings=False,
            ),
            aliases=("llama-3.1-8b", "llama3.1-8b-instruct", "llama 3.1 8b instruct", "llama 3.1 8b"),
        ),
        Architecture(
            key="mistral-7b",
            display_name="Mistral 7B Instruct v0.3",
            hub_id="mistralai/Mistral-7B-Instruct-v0.3",
            params_billion=7.25,
            family="mistral",
            lora_target_modules=LLAMA_TARGETS,
            chat_template="ships one ([INST] ... [/INST]); it drops a system turn unless the last turn is the user's, "
            "so the pipeline folds it into the first user turn",
            supports_system_role=False,
            end_of_turn=("</s>",),
            supports_tools=True,
            template_sha256=(
                "e16746b40344d6c5b5265988e0328a0bf7277be86f1c335156eae07e29c82826",
                "225aaeb28812e3ea17ec7ce3963b705811ea431cfefc8cef624e0f2930f8e7e3",  # the 2024 tool-use version
            ),
            gated=True,
            use_case="Small efficient assistant or coder",
            shape=ModelShape(
                7.25e9,
                hidden=4096,
                layers=32,
                intermediate=14336,
                vocab=32768,
                heads=32,
                kv_heads=8,
                tied_embeddings=False,
            ),
            aliases=("mistral 7b", "mistral-7b-instruct"),
        ),
        Architecture(
            key="gemma",
            display_name="Gemma 2 2B IT",
            hub_id="google/gemma-2-2b-it",
            params_billion=2.61,
            family="gemma2",
            lora_target_modules=LLAMA_TARGETS,
            chat_template="ships one (<start_of_turn>user ... <end_of_turn>); no system role: folded into the first "
            "user turn",
            supports_system_role=False,
            end_of_turn=("<end_of_turn>",),
            supports_tools=False,
            template_sha256=("ecd6ae513fe103f0eb62e8ab5bfa8d0fe45c1074fa398b089c93a7e70c15cfd6",),
            gated=True,
            use_case="Lightweight open-source assistant",
            shape=ModelShape(
                2.61e9,
                hidden=2304,
                layers=26,
                intermediate=9216,
                vocab=256000,
                heads=8,
                kv_heads=4,
                tied_embeddings=True,
            ),
            aliases=("gemma-2-2b-it", "gemma 2b"),
        ),
        Architecture(
            key="openchat",
            display_name="OpenChat 3.5 (0106)",
            hub_id="openchat/openchat-3.5-0106",
            params_billion=7.24,
            family="mistral",
            lora_target_modules=LLAMA_TARGETS,
            chat_template="ships one (GPT4 Correct User: ... <|end_of_turn|>GPT4 Correct Assistant:, and GPT4 Correct "
            "System:)",
            supports_system_role=True,
            end_of_turn=("<|end_of_turn|>",),
            supports_tools=False,
            template_sha256=("901b10d47195fadb5692137ecd4b2733730be9d32fde6c6eae23e5153712525e",),
            gated=False,
            use_case="Lightweight open-source assistant",
            shape=ModelShape(
                7.24e9,
                hidden=4096,
                layers=32,
                intermediate=14336,
                vocab=32002,
                heads=32,
                kv_heads=8,
                tied_embeddings=False,
            ),
            aliases=("openchat-3.5",),
        ),
        Architecture(
            key="falcon-7b",
            display_name="Falcon 7B Instruct",
            hub_id="tiiuae/falcon-7b-instruct",
            params_billion=6.92,
            family="falcon",
            lora_target_modules=FALCON_TARGETS,
            chat_template="ships one (User: ... Assistant: ...) with no end-of-turn token: eos is trained after the "
            "last answer",
            supports_system_role=True,
            end_of_turn=(),
            supports_tools=False,
            template_sha256=("f77aceabccd0634e58edf4e0f0ef45b221502e3dee60dccec848709701b983ec",),
            gated=False,
            use_case="General instruction following",
            shape=ModelShape(
                6.92e9,
                hidden=4544,
                layers=32,
                intermediate=18176,
                vocab=65024,
                heads=71,
                kv_heads=1,
                tied_embeddings=True,
            ),
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
            end_of_turn=("</s>",),
            supports_tools=False,
            template_sha256=("e8d5b5a546d3f19df16a5320c614fab05bdc4edd50e850f1afd947b503ea41cf",),
            gated=True,
            use_case="Long, specific documents (legal)",
            shape=ModelShape(
                13.02e9,
                hidden=5120,
                layers=40,
                intermediate=13824,
                vocab=32000,
                heads=40,
                kv_heads=40,
                tied_embeddings=False,
            ),
            aliases=("llama 13b", "llama-2-13b-chat"),
        ),
        Architecture(
            key="tiny-llama",
            display_name="Tiny LLaMA (local demo model)",
            hub_id=None,
            params_billion=0.00105,
            family="llama",
            lora_target_modules=LLAMA_TARGETS,
            chat_template="built with the model: <|start|>role\\n ... <|end|>, tool calls as `call {...}` lines",
            supports_system_role=True,
            end_of_turn=("<|end|>",),
            supports_tools=True,
            template_sha256=("a2bdfcfefe32921787f802f51b50a2cf800286f62b036f1f4d9e2705954d9fb5",),
            gated=False,
            use_case="Demo and tests: built locally from the bundled data, no download",
            shape=ModelShape(
                1.05e6, hidden=128, layers=4, intermediate=384, vocab=2048, heads=4, kv_heads=2, tied_embeddings=True
            ),
            aliases=("tiny",),
        ),
    )
}


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


_LOOKUP = {_norm(n): a.key for a in ARCHITECTURES.values() for n in (a.key, a.display_name, *a.aliases)}


def resolve_architecture_key(name: str) -> str | None:
    """Map a key, display name or alias ("LLaMA 3.1 8B Instruct") to the catalog key, or None."""
    return _LOOKUP.get(_norm(name))


_BY_TEMPLATE = {digest: a for a in ARCHITECTURES.values() for digest in a.template_sha256}


def architecture_for_template(template_sha256: str) -> Architecture | None:
    """The architecture whose chat-template facts describe the template with this sha256, or None."""
    return _BY_TEMPLATE.get(template_sha256)


def get_architecture(name: str) -> Architecture:
    key = resolve_architecture_key(name)
    if key is None:
        raise KeyError(name)
    return ARCHITECTURES[key]
