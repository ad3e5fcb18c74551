"""The causal-LM loss without full-vocabulary logits, for training and evaluation.

The model runs as the Trainer would run it (the top-level module, so DDP, accelerate's autocast
wrapper and peft's hooks all take part) with `labels` removed and `logits_to_keep` an empty index:
`lm_head` then runs on zero positions. A forward hook on the decoder keeps its `last_hidden_state`
(after the final norm), and the loss is computed from it and `lm_head.weight`:

- on CUDA with the `gpu` extra installed: Liger Kernel's fused linear cross-entropy (its functional
  API, not its model patch, which replaces model forwards and tracks transformers' signatures);
- everywhere else, and when Liger is missing: `trainer.model.chunked_ce` in plain PyTorch.

Both give the value transformers' `ForCausalLMLoss` gives (labels shifted by one, -100 ignored,
`sum / num_items_in_batch` when the Trainer passes that count, else the mean over labelled tokens)
and the same gradients (tests/unit/test_loss.py: max |delta| <= 1e-5, fp32), plus the counts token
accuracy and perplexity need, so nothing downstream needs the logits.

Only torch-free code runs at import: the memory estimate (`llm-trainer estimate`) reads the chunk
size from here without loading torch.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
from typing import Any, NamedTuple

log = logging.getLogger("llm_trainer.model")

IGNORE_INDEX = -100

# One chunk's fp32 logits may take this much: 256 rows at LLaMA 3's 128,256 entries, 128 at Gemma 2's
# 256,000. Larger chunks are barely faster (fewer, bigger matmuls: 2048 rows took 6 % less CPU time
# than 512) and cost memory the 8B recipe does not have (trainer/model/memory.py).
CHUNK_LOGIT_BYTES = 128 * 2**20
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 16, 4096


def chunk_rows(vocab: int, budget_bytes: int = CHUNK_LOGIT_BYTES) -> int:
    """Rows per chunk: the largest power of two whose fp32 logits fit the budget, within 16..4096."""
    rows = max(1, budget_bytes // (4 * vocab))
    rows = 1 << (rows.bit_length() - 1)
    return max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, rows))


def fused_kernel_installed() -> bool:
    """Whether the `gpu` extra (liger-kernel) is installed; cheap, imports nothing."""
    return importlib.util.find_spec("liger_kernel") is not None


@functools.cache
def _liger_function():
    """Liger's functional fused linear cross-entropy, or None (not installed, or triton unusable)."""
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except Exception as exc:  # ImportError, or triton failing to initialise without a usable GPU
        if fused_kernel_installed():
            log.warning("liger-kernel is installed but does not load (%s); using the PyTorch chunked loss", exc)
        return None
    return liger_fused_linear_cross_entropy


def loss_kernel(device_type: str) -> str:
    """'liger' on CUDA when the gpu extra loads, else 'chunked' (what `causal_lm_loss` will run)."""
    return "liger" if device_type == "cuda" and _liger_function() is not None else "chunked"


class LossOutput(NamedTuple):
    loss: Any  # scalar tensor: what `model(**inputs).loss` would be, with its gradient
    summed: Any  # fp32 scalar, no gradient: the summed per-token loss (perplexity = exp(summed / tokens))
    correct: int  # labelled tokens whose argmax prediction is the label (token accuracy)
    tokens: int  # labelled tokens counted


def unwrap_causal_lm(model):
    """DDP's `.module` and peft's wrappers removed: the `*ForCausalLM` module."""
    while hasattr(model, "module") and hasattr(model.module, "forward"):
        model = model.module
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def unsupported_reason(model) -> str | None:
    """Why the chunked path cannot compute this model's loss exactly (then the stock loss runs)."""
    import torch

    base = unwrap_causal_lm(model)
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return f"{type(base).__name__}.forward has no logits_to_keep"
    if getattr(base.config, "logit_scale", None) not in (None, 1, 1.0):
        return "the model scales its logits (logit_scale)"
    if getattr(base.config, "output_router_logits", False):
        return "the model adds a router loss to its language-modelling loss"
    head = output_linear(base.get_output_embeddings())
    if not isinstance(head, torch.nn.Linear) or type(head).forward is not torch.nn.Linear.forward:
        # LoRA on lm_head, trainable tokens, a quantized head: its .weight alone is not the output layer.
        return f"the output layer is a {type(head).__name__}, not a plain Linear"
    return None


def output_linear(head):
    """peft's `modules_to_save` copy of the head when it is active, else the head itself."""
    active = getattr(head, "modules_to_save", None)
    if active is not None and not head.disable_adapters and head.active_adapters:
        return active[head.active_adapters[0]]
    return getattr(head, "original_module", head)


def shift_labels(labels, ignore_index: int = IGNORE_INDEX):
    """ForCausalLMLoss's shift, byte for byte: one ignored label appended, the first dropped."""
    import torch.nn.functional as F

    return F.pad(labels, (0, 1), value=ignore_index)[..., 1:].contiguous()


def final_hidden_states(model, inputs: dict[str, Any]):
    """Run `model` on `inputs` (no labels) with lm_head on zero positions; the decoder's output."""
    import torch

    base = unwrap_causal_lm(model)
    captured: dict[str, Any] = {}

    def keep(_module, _args, output) -> None:  # returning a value would replace the module's output
        captured["hidden"] = output if isinstance(output, torch.Tensor) else output[0]

    reference = inputs.get("input_ids", inputs.get("inputs_embeds"))
    handle = base.get_decoder().register_forward_hook(keep)
    try:
        model(**inputs, logits_to_keep=torch.empty(0, dtype=torch.long, device=reference.device))
    finally:
        handle.remove()
    return captured["hidden"]


def causal_lm_loss(model, inputs: dict[str, Any], *, num_items_in_batch=None, chunk: int | None = None) -> LossOutput:
    """The causal-LM loss of `model` on `inputs` (with `labels`, or `shift_labels` as some collators
    give them), equal to the stock `model(**inputs).loss`, from the final hidden states."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    shifted = inputs.pop("shift_labels", None)
    inputs.pop("num_items_in_batch", None)
    base = unwrap_causal_lm(model)
    head = output_linear(base.get_output_embeddings())
    hidden = final_hidden_states(model, inputs)
    targets = (shifted if shifted is not None else shift_labels(labels)).to(hidden.device)
    summed, correct, tokens = linear_cross_entropy_sum(
        hidden,
        head.weight,
        targets,
        bias=head.bias,
        softcap=getattr(base.config, "final_logit_softcapping", None),
        chunk=chunk or chunk_rows(head.weight.shape[0]),
    )
    if num_items_in_batch is not None:
        if hasattr(num_items_in_batch, "to"):
            num_items_in_batch = num_items_in_batch.to(summed.device)
        loss = summed / num_items_in_batch
    else:
        # F.cross_entropy's mean over no labelled token is NaN; the Trainer's stock loss is too.
        loss = summed / tokens if tokens else summed * float("nan")
    return LossOutput(loss, summed.detach(), int(correct), tokens)


def linear_cross_entropy_sum(hidden, weight, targets, *, bias=None, softcap=None, chunk: int):
    """Summed loss, correct predictions and labelled count, by Liger on CUDA or in PyTorch chunks."""
    if hidden.is_cuda and _liger_function() is not None:
        return _liger_sum(hidden, weight, targets, bias, softcap)
    from trainer.model.chunked_ce import chunked_linear_cross_entropy

    return chunked_linear_cross_entropy(hidden, weight, targets, chunk=chunk, bias=bias, softcap=softcap)


def _liger_sum(hidden, weight, targets, bias, softcap):
    """Liger multiplies every row it is given, so the labelled rows are gathered first; it does not
    cast the hidden states to the weight's dtype (its issue #305), so that is done here."""
    import torch

    flat = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    index = (targets != IGNORE_INDEX).nonzero().squeeze(1)
    rows = flat.index_select(0, index).to(weight.dtype)
    labelled = targets.index_select(0, index)
    if labelled.numel() == 0:
        return rows.sum().float() * 0.0, torch.zeros((), dtype=torch.int64, device=flat.device), 0
    out = _liger_function()(
        rows, weight, labelled, bias=bias, reduction="sum", softcap=softcap, return_token_accuracy=True
    )
    correct = (out.token_accuracy.detach() * labelled.numel()).round().long()
    return out.loss.float(), correct, int(labelled.numel())
