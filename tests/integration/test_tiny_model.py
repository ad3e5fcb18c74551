"""The tiny model is built once and loads through the same from_pretrained path as a real one."""

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import chat
from trainer.data.formats import Example
from trainer.model.tiny import ensure_tiny_model
from trainer.model.tokens import IGNORE_INDEX, tokenize_example


def test_build_once_and_reload(tiny_model_dir):
    assert (tiny_model_dir / "model.safetensors").is_file()
    assert ensure_tiny_model() == tiny_model_dir  # cached: no rebuild
    build = json.loads((tiny_model_dir / "llm_trainer_build.json").read_text())
    assert build["pretrain_loss_last"] < build["pretrain_loss_first"] - 2
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama" and model.config.num_key_value_heads < model.config.num_attention_heads
    assert tokenizer.model_max_length == 1024 and tokenizer.chat_template
    ids = tokenizer("Where is my order?", return_tensors="pt")
    with torch.no_grad():
        assert model(**ids).logits.shape[-1] == len(tokenizer)


def test_chat_template_and_answer_only_labels(tiny_tokenizer):
    example = Example("k", "f", 1, messages=chat("Where is my parcel?", "It ships tomorrow.")["messages"])
    tokenized = tokenize_example(tiny_tokenizer, example)
    answer_ids = [t for t, label in zip(tokenized.input_ids, tokenized.labels, strict=True) if label != IGNORE_INDEX]
    assert answer_ids == [label for label in tokenized.labels if label != IGNORE_INDEX]
    # Exactly the assistant's content and its end-of-turn token carry loss; the prompt does not, nor
    # the `\n` the template writes after `<|end|>` (its turn separator, never generated).
    assert tiny_tokenizer.decode(answer_ids) == "It ships tomorrow.<|end|>"
    assert tokenized.labels[0] == IGNORE_INDEX
