"""Held-out loss, perplexity and token accuracy on the answer tokens.

By default through the same loss as training (trainer/model/loss.py): from the final hidden
states in chunks, so evaluating an 8B model never holds its [tokens, 128k] logits (in bf16 and
their fp32 upcast: 6 bytes per token per vocabulary entry); the sums are the stock ones.
"""

from __future__ import annotations

import math

from trainer.data.formats import Example
from trainer.model.progress import RowProgress
from trainer.model.tokens import IGNORE_INDEX, tokenize_examples


def score(
    model,
    tokenizer,
    examples: list[Example],
    max_seq_length: int,
    batch_size: int,
    chunked_loss: bool = True,
    label: str = "scoring",
) -> tuple[float, float, int, int]:
    """Mean token loss and accuracy over the answer tokens of `examples` (token-weighted)."""
    import torch
    from transformers import DataCollatorForSeq2Seq

    from trainer.model.loss import unsupported_reason

    tokenized, too_long = tokenize_examples(tokenizer, examples, max_seq_length)
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
    device = next(model.parameters()).device
    total_loss, correct, counted = 0.0, 0, 0
    chunked = chunked_loss and unsupported_reason(model) is None
    model.eval()
    progress = RowProgress(label, len(tokenized))
    with torch.no_grad():
        for start in range(0, len(tokenized), batch_size):
            batch = collate(
                [{"input_ids": t.input_ids, "labels": t.labels} for t in tokenized[start : start + batch_size]]
            )
            batch = {k: v.to(device) for k, v in batch.items()}
            loss_sum, batch_correct, batch_counted = _batch_sums(model, batch, chunked)
            total_loss += loss_sum
            correct += batch_correct
            counted += batch_counted
            progress.advance(len(batch["input_ids"]))
    progress.finish()
    if counted == 0:
        return float("nan"), float("nan"), 0, too_long
    return total_loss / counted, correct / counted, counted, too_long


def _batch_sums(model, batch, chunked: bool) -> tuple[float, int, int]:
    """Summed loss, correct predictions and counted answer tokens of one padded batch."""
    import torch

    # use_cache=False: a model with the cache on ignores packed-sequence boundaries.
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}
    if chunked:
        from trainer.model.loss import causal_lm_loss

        out = causal_lm_loss(model, {**inputs, "labels": batch["labels"]})
        return float(out.summed), out.correct, out.tokens
    logits = model(**inputs).logits.float()
    shift_logits, shift_labels = logits[:, :-1], batch["labels"][:, 1:]
    mask = shift_labels != IGNORE_INDEX
    summed = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    correct = ((shift_logits.argmax(-1) == shift_labels) & mask).sum()
    return summed.item(), int(correct), int(mask.sum())


def score_metrics(
    model,
    tokenizer,
    examples: list[Example],
    max_seq_length: int,
    batch_size: int,
    chunked_loss: bool = True,
    label: str = "scoring",
) -> dict[str, float]:
    """score() as the eval_* metrics dict; restores the model's train/eval mode."""
    was_training = model.training
    try:
        loss, accuracy, tokens, _ = score(model, tokenizer, examples, max_seq_length, batch_size, chunked_loss, label)
    finally:
        model.train(was_training)
    if tokens == 0:
        return {}
    return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 50)), "eval_token_accuracy": accuracy}
