"""Linear + cross-entropy in chunks, in plain PyTorch: the loss never holds full-vocabulary logits.

The stock path (`lm_head` then transformers' `ForCausalLMLoss`) keeps the logits, their fp32
upcast and the fp32 gradient alive at once: ~10 bytes x tokens x vocabulary (4.9 GiB for 4,096
tokens of LLaMA 3's 128,256 entries). Here:

1. **Only labelled rows** are gathered (`hidden[labels != -100]`): with answer-only masks the
   output projection runs on the supervised tokens alone.
2. **One chunk at a time**: `chunk` rows' logits are computed in the weight's dtype (as `lm_head`
   does), upcast to fp32 (as `ForCausalLMLoss` does), soft-capped when the model says so (Gemma 2),
   and turned into softmax and gradient *in place* in that one fp32 buffer.
3. **The gradient is computed in the forward** (Liger Kernel's approach): while a chunk's logits
   are live, `d loss / d hidden = (softmax - onehot) @ W` is contracted at once, so the backward
   only scales the stored [rows, h] gradient by the incoming scalar. That is exact for any scalar
   scaling of the loss (division by `num_items_in_batch`, gradient accumulation, AMP scaling), and
   saves the second `lm_head` matmul a recompute-in-backward would need (measured: the same CPU
   time as the stock loss, against +50 % for recomputing; the peak is the same one chunk).

Peak memory of the loss (`trainer.model.memory.loss_bytes` models it term by term): one fp32
[chunk, V] buffer, plus its copy in the weight's dtype when that is 16-bit (the matmul output
before the upcast, and the gradient cast back for the contraction), plus one more fp32 buffer for
the soft-cap derivative, plus the gathered rows and their fp32 gradient [rows, h].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _chunk_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """One chunk's logits in the weight's dtype, as `lm_head` computes them, upcast to fp32."""
    return F.linear(h.to(weight.dtype), weight, bias).float()


def _softcap_(z: torch.Tensor, cap: float | None) -> torch.Tensor | None:
    """In place z <- cap * tanh(z / cap); returns the derivative 1 - tanh^2 (None without a cap)."""
    if cap is None:
        return None
    t = z.div_(cap).tanh_()
    derivative = torch.mul(t, t).neg_().add_(1.0)  # the one extra [chunk, V] buffer a cap costs
    t.mul_(cap)
    return derivative


def _softmax_(z: torch.Tensor) -> torch.Tensor:
    """In place z <- softmax(z) by rows; returns logsumexp(z). torch.logsumexp would allocate
    [chunk, V] temporaries; by hand the chunk stays one buffer."""
    peak = z.amax(dim=1, keepdim=True)
    z.sub_(peak).exp_()
    total = z.sum(dim=1, keepdim=True)
    z.div_(total)
    return (total.log_() + peak).squeeze(1)


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of softcap(h @ W^T + b) against `target` (rows already labelled), and the
    number of rows whose argmax is the target."""

    @staticmethod
    def forward(ctx, h, weight, bias, target, chunk, softcap, needs):
        # The matmul dtype was chosen by the caller; autocast would re-cast the chunks differently.
        with torch.autocast(device_type=h.device.type, enabled=False):
            total, correct, grads = _forward_chunks(h, weight, bias, target, chunk, softcap, needs)
        ctx.mark_non_differentiable(correct)
        ctx.dtypes = (h.dtype, weight.dtype, bias.dtype if bias is not None else None)
        ctx.save_for_backward(*grads)
        return total, correct

    @staticmethod
    def backward(ctx, grad_total, _grad_correct):
        outputs = [
            (g * grad_total).to(dtype) if g is not None else None
            for g, dtype in zip(ctx.saved_tensors, ctx.dtypes, strict=True)
        ]
        return (*outputs, None, None, None, None)


def _forward_chunks(h, weight, bias, target, chunk: int, softcap: float | None, needs: tuple[bool, ...]):
    """The chunk loop: summed loss, correct count, and the fp32 gradients (None where not needed)."""
    n = h.shape[0]
    need_h, need_w, need_b = needs
    grad_h = torch.empty((n, h.shape[1]), dtype=torch.float32, device=h.device) if need_h else None
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if need_w else None
    grad_b = torch.zeros(weight.shape[0], dtype=torch.float32, device=h.device) if need_b else None
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    correct = torch.zeros((), dtype=torch.int64, device=h.device)
    rows = torch.arange(min(chunk, n), device=h.device)
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        hc, yc = h[start:end], target[start:end]
        z = _chunk_logits(hc, weight, bias)  # [c, V] fp32: the only vocabulary-sized buffer
        correct += (z.argmax(dim=1) == yc).sum()  # the cap is monotonic: same argmax
        derivative = _softcap_(z, softcap)
        z_target = z[rows[: end - start], yc]
        total += (_softmax_(z) - z_target).sum()
        if grad_h is None and grad_w is None and grad_b is None:
            continue  # evaluation: no gradient work at all
        z[rows[: end - start], yc] -= 1.0  # softmax - onehot = d(sum of losses) / d(capped logits)
        if derivative is not None:
            z.mul_(derivative)
        g = z.to(weight.dtype)  # as the stock 16-bit backward contracts it
        if grad_h is not None:
            grad_h[start:end] = g @ weight
        if grad_w is not None:
            grad_w.addmm_(g.t().float(), hc.float())
        if grad_b is not None:
            grad_b += g.float().sum(0)
        del g, z, derivative  # g may alias z: no reference may survive into the next chunk
    return total, correct, (grad_h, grad_w, grad_b)


def chunked_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    chunk: int,
    bias: torch.Tensor | None = None,
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Summed cross-entropy of `softcap(hidden @ weight.T + bias)` against `labels`, in chunks.

    `hidden` [..., h] and `labels` [...] are already aligned (hidden[t] predicts labels[t]);
    positions labelled IGNORE_INDEX are skipped. Returns (summed loss, fp32 scalar with gradient;
    rows whose argmax equals the label, int64; labelled rows). Under autocast the chunks are
    computed in the autocast dtype, as `lm_head` would be.
    """
    h_dim = hidden.shape[-1]
    hidden = hidden.reshape(-1, h_dim)
    labels = labels.reshape(-1).to(hidden.device)
    index = (labels != IGNORE_INDEX).nonzero().squeeze(1)
    h = hidden.index_select(0, index)  # backward scatters the gradient back into [T, h]
    target = labels.index_select(0, index)
    if torch.is_autocast_enabled(hidden.device.type):
        dtype = torch.get_autocast_dtype(hidden.device.type)
        weight = weight.to(dtype)  # what autocast does to lm_head's weight, once per call
        bias = bias.to(dtype) if bias is not None else None
    if target.numel() == 0:
        # No labelled token: an exact zero that keeps the graph connected (DDP expects every rank's
        # backward to reach the same parameters).
        return h.sum().float() * 0.0, torch.zeros((), dtype=torch.int64, device=hidden.device), 0
    grad_on = torch.is_grad_enabled()
    needs = tuple(grad_on and t is not None and t.requires_grad for t in (h, weight, bias))
    total, correct = _ChunkedLinearCrossEntropy.apply(h, weight, bias, target, chunk, softcap, needs)
    return total, correct, int(target.numel())
