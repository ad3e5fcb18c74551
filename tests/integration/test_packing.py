"""Packed (flattened) batches: no token attends across examples."""

import torch

from tests.conftest import chat
from trainer.data.formats import Example
from trainer.model.loading import load_base_model
from trainer.model.runtime import pick_runtime
from trainer.model.tokens import IGNORE_INDEX, tokenize_example
from trainer.train.arguments import build_collator


def _per_token_losses(logits, labels):
    shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        shift_logits.transpose(1, 2), shift_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    return losses[shift_labels != IGNORE_INDEX]


def test_packed_batch_gives_the_same_per_example_loss_as_one_by_one(tiny_model_dir, tiny_tokenizer):
    model = load_base_model(tiny_model_dir, None, pick_runtime(None)).eval()
    examples = [
        Example("a", "f", 1, messages=chat("Where is my order 1234?", "It left our warehouse yesterday.")["messages"]),
        Example(
            "b",
            "f",
            2,
            messages=chat("Reset password", "Use the link on the sign-in page, then check your email for a code.")[
                "messages"
            ],
        ),
        Example("c", "f", 3, messages=chat("Hi", "Hello! How can I help?")["messages"]),
    ]
    tokenized = [tokenize_example(tiny_tokenizer, e) for e in examples]
    features = [{"input_ids": t.input_ids, "labels": t.labels} for t in tokenized]
    batch = build_collator(tiny_tokenizer, packed=True)(features)
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    assert batch["position_ids"][0].tolist() == [p for t in tokenized for p in range(len(t.input_ids))]
    with torch.no_grad():
        packed = _per_token_losses(
            model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits,
            batch["labels"],
        )
        alone = torch.cat(
            [
                _per_token_losses(
                    model(input_ids=torch.tensor([t.input_ids]), use_cache=False).logits, torch.tensor([t.labels])
                )
                for t in tokenized
            ]
        )
    assert packed.shape == alone.shape
    assert (packed - alone).abs().max().item() <= 1e-5
