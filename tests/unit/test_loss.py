"""The loss without full-vocabulary logits equals transformers' stock loss: value and every LoRA
gradient within 1e-5 (fp32, CPU), on answer-only masks, padded and packed batches, tied and untied
heads, Gemma 2's soft cap, and the Trainer's `num_items_in_batch` normalisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.model.chunked_ce import chunked_linear_cross_entropy
from trainer.model.loss import causal_lm_loss, chunk_rows, shift_labels, unsupported_reason

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

TOL = 1e-5
VOCAB = 4096
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _llama(tied: bool):
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=tied,
        use_cache=False,  # with the cache on, packed rows without an attention mask attend across examples
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


def _gemma2():
    config = transformers.Gemma2Config(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=128,
        final_logit_softcapping=2.0,  # small, so tanh is far from linear on these logits
        use_cache=False,
    )
    torch.manual_seed(0)
    model = transformers.Gemma2ForCausalLM(config)
    model.set_attn_implementation("eager")
    with torch.no_grad():  # random weights give tiny logits; larger ones make the cap bite
        model.model.norm.weight.add_(3.0)
    return model


def _lora(model, **extra):
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=extra.pop("target_modules", TARGETS),
        init_lora_weights=False,  # B = 0 would make every lora_A gradient exactly zero
        task_type="CAUSAL_LM",
        **extra,
    )
    torch.manual_seed(1)
    return peft.get_peft_model(model, config)


def _examples(n: int, seed: int) -> list[dict]:
    """Answer-only rows: the prompt's labels are -100."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        length = int(torch.randint(6, 20, (1,), generator=g))
        prompt = int(torch.randint(1, length - 2, (1,), generator=g))
        ids = torch.randint(3, VOCAB, (length,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return rows


def padded_batch(seed: int = 0) -> dict:
    rows = _examples(3, seed)
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), -100)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n], mask[i, :n], labels[i, :n] = torch.tensor(r["input_ids"]), 1, torch.tensor(r["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def packed_batch(seed: int = 0) -> dict:
    batch = transformers.DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)(_examples(4, seed))
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    return dict(batch)


MODELS = {
    "llama_untied": lambda: _lora(_llama(tied=False)),
    "llama_tied": lambda: _lora(_llama(tied=True)),
    "gemma2_softcap": lambda: _lora(_gemma2()),
}
BATCHES = {"padded": padded_batch, "packed": packed_batch}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    return MODELS[request.param]()


def _trainable_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _stock_and_chunked(model, batch, num_items_in_batch=None, chunk=7):
    """(|loss delta|, max |grad delta|) between model(**batch).loss and causal_lm_loss."""
    model.train()
    model.zero_grad(set_to_none=True)
    extra = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
    reference = model(**batch, **extra).loss
    reference.backward()
    expected = _trainable_grads(model)
    model.zero_grad(set_to_none=True)
    out = causal_lm_loss(model, batch, num_items_in_batch=num_items_in_batch, chunk=chunk)
    out.loss.backward()
    got = _trainable_grads(model)
    assert all(g.abs().max() > 0 for g in expected.values()), "a trainable gradient is identically zero"
    d_grad = max((got[n] - expected[n]).abs().max().item() for n in expected)
    return abs(out.loss.item() - reference.item()), d_grad


@pytest.mark.parametrize("batch_name", list(BATCHES))
def test_loss_and_lora_gradients_equal_the_stock_loss(model, batch_name):
    d_loss, d_grad = _stock_and_chunked(model, BATCHES[batch_name]())
    assert d_loss <= TOL and d_grad <= TOL, (d_loss, d_grad)


@pytest.mark.parametrize("batch_name", list(BATCHES))
def test_num_items_in_batch_normalises_like_the_trainer(model, batch_name):
    batch = BATCHES[batch_name]()
    here = int((batch["labels"][..., 1:] != -100).sum())  # the Trainer counts the whole accumulation step
    d_loss, d_grad = _stock_and_chunked(model, batch, num_items_in_batch=torch.tensor(3 * here + 5))
    assert d_loss <= TOL and d_grad <= TOL, (d_loss, d_grad)


def test_counts_for_accuracy_and_perplexity_match_the_logits(model):
    model.eval()
    batch = packed_batch(3)
    with torch.no_grad():
        reference = model(**batch)
        out = causal_lm_loss(model, batch, chunk=5)
    targets = shift_labels(batch["labels"]).reshape(-1)
    labelled = targets != -100
    predictions = reference.logits.reshape(-1, VOCAB).argmax(-1)
    assert out.tokens == int(labelled.sum())
    assert out.correct == int((predictions[labelled] == targets[labelled]).sum())
    assert abs(float(out.summed) / out.tokens - reference.loss.item()) <= TOL
    assert not out.loss.requires_grad


def test_trainable_output_head_gets_its_gradient_in_chunks():
    model = _lora(_llama(tied=False), target_modules=["q_proj", "v_proj"], modules_to_save=["lm_head"])
    assert unsupported_reason(model) is None
    d_loss, d_grad = _stock_and_chunked(model, packed_batch(5), chunk=6)
    assert d_loss <= TOL and d_grad <= TOL


def test_lora_on_the_output_head_falls_back_to_the_stock_loss():
    model = _lora(_llama(tied=False), target_modules=["q_proj", "lm_head"])
    assert "not a plain Linear" in unsupported_reason(model)


def test_function_gradients_for_weight_bias_and_soft_cap():
    torch.manual_seed(0)
    rows, h, vocab = 53, 16, 300
    hidden, weight, bias = torch.randn(rows, h), torch.randn(vocab, h) * 0.5, torch.randn(vocab) * 0.1
    labels = torch.randint(0, vocab, (rows,))
    labels[torch.rand(rows) < 0.4] = -100
    for cap in (None, 1.5):
        expected = [t.clone().requires_grad_(True) for t in (hidden, weight, bias)]
        logits = F.linear(expected[0], expected[1], expected[2]).float()
        logits = torch.tanh(logits / cap) * cap if cap else logits
        reference = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
        (reference * 1.7).backward()  # a non-unit incoming gradient
        got = [t.clone().requires_grad_(True) for t in (hidden, weight, bias)]
        summed, _, n = chunked_linear_cross_entropy(got[0], got[1], labels, chunk=4, bias=got[2], softcap=cap)
        (summed * 1.7).backward()
        assert n == int((labels != -100).sum())
        assert abs(summed.item() - reference.item()) <= TOL * abs(reference.item())
        assert all((a.grad - b.grad).abs().max().item() <= TOL for a, b in zip(expected, got, strict=True))


def test_bf16_head_computes_logits_like_lm_head():
    """A 16-bit head: bf16 logits upcast per chunk, as lm_head + ForCausalLMLoss compute them."""
    torch.manual_seed(0)
    hidden, weight = torch.randn(40, 32).bfloat16(), (torch.randn(500, 32) * 0.3).bfloat16()
    labels = torch.randint(0, 500, (40,))
    labels[::3] = -100
    expected, got = hidden.clone().requires_grad_(True), hidden.clone().requires_grad_(True)
    reference = F.cross_entropy(F.linear(expected, weight).float(), labels, reduction="sum")
    reference.backward()
    summed, _, _ = chunked_linear_cross_entropy(got, weight, labels, chunk=8)
    summed.backward()
    assert got.grad.dtype == torch.bfloat16
    assert abs(summed.item() - reference.item()) <= TOL * abs(reference.item())
    assert (got.grad.float() - expected.grad.float()).abs().max().item() <= 1e-2  # bf16 ulps


def test_no_labelled_token_gives_an_exact_zero_and_keeps_the_graph():
    hidden = torch.randn(6, 8, requires_grad=True)
    summed, correct, n = chunked_linear_cross_entropy(hidden, torch.randn(20, 8), torch.full((6,), -100), chunk=4)
    summed.backward()
    assert n == 0 and int(correct) == 0 and summed.item() == 0.0 and (hidden.grad == 0).all()


def test_chunk_rows_follow_the_logit_budget():
    assert chunk_rows(128_256) == 256  # 128 MiB of fp32 logits
    assert chunk_rows(256_000) == 128
    assert chunk_rows(2048) == 4096  # the cap
