"""The `chunked_loss` setting: on, the Trainer subclass and the held-out scoring compute the loss
from the final hidden states (no logits anywhere); off, transformers' stock loss with its logits.
Both give the same numbers on the tiny model (fp32, CPU)."""

from __future__ import annotations

import pytest
import torch

from trainer.config.loading import load_settings
from trainer.data.formats import Example
from trainer.evaluate.scoring import score
from trainer.model.loading import attach_lora, load_base_model, load_tokenizer
from trainer.model.runtime import Runtime
from trainer.train.arguments import build_collator, memory_options

transformers = pytest.importorskip("transformers")
CPU = Runtime(device="cpu", compute_dtype="float32", quantization="none")
CUDA = Runtime(device="cuda", compute_dtype="bfloat16", quantization="nf4")


def _rows(n: int) -> list[Example]:
    return [
        Example(
            f"row-{i}",
            "test",
            i,
            messages=[
                {"role": "user", "content": f"Where is my order number {i}?"},
                {"role": "assistant", "content": f"Order {i} ships tomorrow; the tracking link follows by email."},
            ],
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    model = load_base_model(tiny_model_dir, None, CPU)
    model = attach_lora(
        model, rank=8, alpha=16, dropout=0.0, target_modules="all-linear", seed=0, gradient_checkpointing=False
    )
    with torch.no_grad():  # LoRA B starts at zero; make the adapter count
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    return model


def test_the_setting_reaches_the_trainer_on_every_device():
    for value in (True, False):
        settings = load_settings("demo", None, [f"chunked_loss={str(value).lower()}"])
        assert memory_options(settings, CPU)["chunked_loss"] is value
        assert memory_options(settings, CUDA)["chunked_loss"] is value


def test_trainer_loss_on_and_off_agree_and_only_off_makes_logits(lora_model, tiny_model_dir, tmp_path):
    from transformers import TrainingArguments

    from trainer.model.tokens import tokenize_examples
    from trainer.train.hf_trainer import PipelineTrainer

    tokenizer = load_tokenizer(tiny_model_dir)
    tokenized, _ = tokenize_examples(tokenizer, _rows(4), 256)
    features = [{"input_ids": t.input_ids, "labels": t.labels} for t in tokenized]
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", disable_tqdm=True)
    results = {}
    for chunked in (True, False):
        trainer = PipelineTrainer(
            model=lora_model, args=args, data_collator=build_collator(tokenizer, packed=True), chunked_loss=chunked
        )
        batch = trainer.data_collator(features)
        lora_model.train()
        lora_model.zero_grad(set_to_none=True)
        loss, outputs = trainer.compute_loss(lora_model, batch, return_outputs=True)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in lora_model.named_parameters() if p.requires_grad}
        results[chunked] = (loss.detach(), outputs, grads)
    (on, on_out, on_grads), (off, off_out, off_grads) = results[True], results[False]
    assert "logits" not in on_out and off_out["logits"].shape[-1] == lora_model.config.vocab_size
    assert abs(on.item() - off.item()) <= 1e-5
    assert max((on_grads[n] - off_grads[n]).abs().max().item() for n in on_grads) <= 1e-5


def test_held_out_scores_on_and_off_agree(lora_model, tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    on = score(lora_model, tokenizer, _rows(6), 256, 4, chunked_loss=True)
    off = score(lora_model, tokenizer, _rows(6), 256, 4, chunked_loss=False)
    assert on[2] == off[2] > 0  # the same answer tokens counted
    assert abs(on[0] - off[0]) <= 1e-5 and on[1] == off[1]
