"""Build the tiny LLaMA-architecture demo model and its BPE tokenizer, once, in Hugging Face format.

No machine here reaches a model hub, yet the demo and the tests must exercise the same
`from_pretrained` path a real model takes. So we build a small `LlamaForCausalLM` (random weights,
fixed seed) and a byte-level BPE tokenizer trained on the bundled sample data, with a chat
template, and save both with `save_pretrained` (safetensors). Everything downstream treats the
folder exactly like a downloaded model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from trainer.config.state import PROJECT_ROOT, models_dir

log = logging.getLogger("llm_trainer.tiny")

# Bump when the recipe below changes, so cached builds are rebuilt instead of silently reused.
BUILD_VERSION = 3
# A short language-model warm-up on the corpus's plain text (no chat template): the base then
# "knows the language" like a real base model does, and fine-tuning has something to adapt. From
# random weights, LoRA alone barely moves the loss in a demo-sized run.
PRETRAIN_STEPS = 80
PRETRAIN_BLOCK = 128
PRETRAIN_BATCH = 16
TINY_CORPUS = PROJECT_ROOT / "examples" / "data" / "customer-support" / "chat"

# Small enough to train in seconds on 2 cores, shaped like the real thing (GQA, SwiGLU, RoPE).
# Dimensions are multiples of 64 so bitsandbytes' 4-bit blocks tile every weight.
TINY_CONFIG = dict(
    vocab_size=2048,
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=1024,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
)

SPECIAL_TOKENS = {
    "bos": "<|begin_of_text|>",
    "eos": "<|end|>",
    "pad": "<|pad|>",
    "start": "<|start|>",
    "unk": "<|unk|>",
}

# A LLaMA-3-like template: each turn is `<|start|>role\ncontent<|end|>\n`. `<|end|>` is the eos
# token, so generation stops at the end of the assistant's turn. Tools as the real models have them:
# the definitions first, each call on a line of its own after the turn's text, results as `tool`
# turns; so the demo model trains tool-use data (LLaMA-Factory's glaive demo) with the defaults.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if tools %}{{ '<|start|>tools\n' + (tools | tojson) + '<|end|>\n' }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|start|>' + message['role'] + '\n' + message['content'] }}"
    "{% for call in message.get('tool_calls') or [] %}{{ '\ncall ' + (call['function'] | tojson) }}{% endfor %}"
    "{{ '<|end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start|>assistant\n' }}{% endif %}"
)


def tiny_model_dir() -> Path:
    return models_dir() / "tiny-llama"


def _corpus_texts(corpus_dir: Path) -> Iterator[str]:
    for path in sorted(corpus_dir.rglob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                for message in record.get("messages", []):
                    if isinstance(message, dict) and isinstance(message.get("content"), str):
                        yield message["content"]


def build_tokenizer(corpus_dir: Path = TINY_CORPUS):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk"]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = list(SPECIAL_TOKENS.values())
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_CONFIG["vocab_size"],
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus_texts(corpus_dir), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"],
        unk_token=SPECIAL_TOKENS["unk"],
        additional_special_tokens=[SPECIAL_TOKENS["start"]],
        model_max_length=TINY_CONFIG["max_position_embeddings"],
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **{**TINY_CONFIG, "vocab_size": len(tokenizer)},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def pretrain(model, tokenizer, steps: int = PRETRAIN_STEPS, seed: int = 0) -> list[float]:
    """Full-parameter causal-LM training on contiguous blocks of the corpus text. Returns losses."""
    import torch

    ids: list[int] = []
    for text in _corpus_texts(TINY_CORPUS):
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
    blocks = torch.tensor(ids[: len(ids) // PRETRAIN_BLOCK * PRETRAIN_BLOCK]).view(-1, PRETRAIN_BLOCK)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    losses = []
    model.train()
    for _ in range(steps):
        batch = blocks[torch.randint(len(blocks), (PRETRAIN_BATCH,), generator=generator)]
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


def _is_built(path: Path) -> bool:
    marker = path / "llm_trainer_build.json"
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text())["build_version"] == BUILD_VERSION
    except (ValueError, KeyError):
        return False


def ensure_tiny_model(path: Path | None = None) -> Path:
    """Return the tiny model folder, building it first if it is missing or from an older recipe.

    The build goes to a temporary sibling folder that is renamed into place, so an interrupted
    build never leaves a folder that looks complete. Under a file lock beside it: two first runs at
    once build it once (the second waits, then finds it), and never replace it while one loads it.
    """
    from filelock import FileLock

    path = path or tiny_model_dir()
    if _is_built(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock", timeout=1800):
        if not _is_built(path):  # built by another process while this one waited
            _build(path)
    return path


def _build(path: Path) -> None:
    log.info("Building the tiny demo model and tokenizer in %s (once)", path)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-llama-", dir=path.parent))
    try:
        tokenizer = build_tokenizer()
        model = build_model(tokenizer)
        losses = pretrain(model, tokenizer)
        log.info("Tiny base warm-up: loss %.2f -> %.2f over %d steps", losses[0], losses[-1], len(losses))
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        n_params = sum(p.numel() for p in model.parameters())
        (tmp / "llm_trainer_build.json").write_text(
            json.dumps(
                {
                    "build_version": BUILD_VERSION,
                    "parameters": n_params,
                    "config": TINY_CONFIG,
                    "pretrain_loss_first": losses[0],
                    "pretrain_loss_last": losses[-1],
                },
                indent=2,
            )
        )
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
