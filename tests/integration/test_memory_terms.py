"""Each term of the memory estimate against the code path it models, measured on the CPU: the
4-bit base the loader builds, the LoRA weights with their gradients and AdamW state, what a
decoder layer of the pipeline's own 4-bit + LoRA model saves for its backward, the buffers the
chunked loss allocates, which tensors activation offloading moves, and that the estimate's recipe
is the one the training code runs. Not measurable here: `workspace` (cuBLAS), `backward_working`
and `dequantized_weight` (bitsandbytes' CUDA kernels); benchmarks/gpu_qlora.py checks the sum on a GPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from trainer.config.catalog import LLAMA_TARGETS, ModelShape
from trainer.config.loading import load_settings
from trainer.model.chunked_ce import chunked_linear_cross_entropy
from trainer.model.loading import activation_offloading, attach_lora, load_base_model, prepare_for_training
from trainer.model.loss import causal_lm_loss
from trainer.model.memory import (
    Recipe,
    base_weight_bytes,
    chunked_loss_bytes,
    estimate,
    layer_bytes_per_token,
    recipe_for,
)
from trainer.model.runtime import Runtime
from trainer.train.arguments import memory_options, resolve_batching, training_arguments
from trainer.train.loop import _cast_trainable_to_fp32

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
SHAPE = ModelShape(0, hidden=128, layers=1, intermediate=384, vocab=256, heads=4, kv_heads=2, tied_embeddings=False)
CPU_BF16 = Runtime(device="cpu", compute_dtype="bfloat16", quantization="nf4")
CUDA = Runtime(device="cuda", compute_dtype="bfloat16", quantization="nf4")


def _llama_config(layers: int, **extra):
    return transformers.LlamaConfig(
        vocab_size=SHAPE.vocab,
        hidden_size=SHAPE.hidden,
        intermediate_size=SHAPE.intermediate,
        num_hidden_layers=layers,
        num_attention_heads=SHAPE.heads,
        num_key_value_heads=SHAPE.kv_heads,
        max_position_embeddings=1024,
        use_cache=False,
        **extra,
    )


def _saved_bytes(layer, rotary, tokens: int, excluded: set[int]) -> int:
    """Bytes of the distinct storages one decoder layer saves for its backward (bf16 autocast, as the
    Trainer runs it on CUDA); the layer input and the rotary tables are counted by other terms."""
    x = torch.randn(1, tokens, SHAPE.hidden, dtype=torch.bfloat16, requires_grad=True)
    positions = torch.arange(tokens).unsqueeze(0)
    cos, sin = rotary(x, positions)
    skip = excluded | {t.untyped_storage().data_ptr() for t in (x, cos, sin)}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x, attention_mask=None, position_ids=positions, position_embeddings=(cos, sin))
    return sum(saved.values())


def _saved_model(folder, shape: ModelShape):
    config = transformers.LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        tie_word_embeddings=shape.tied_embeddings,
        use_cache=False,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def test_base_weights_term_is_what_the_4bit_loader_holds(tmp_path):
    # Wide enough that bitsandbytes' fixed per-layer code tables (~1 KiB) do not dominate.
    wide = ModelShape(0, hidden=512, layers=1, intermediate=1536, vocab=256, heads=8, kv_heads=4, tied_embeddings=False)
    params = _saved_model(tmp_path, wide)
    wide = dataclasses.replace(wide, params=params)
    model = load_base_model(tmp_path, 4, CPU_BF16)
    # packed NF4 weights, their absmax (uint8, double quantization) and its fp32 second level,
    # code tables, embeddings, head and norms in bf16: all of it is in the state dict
    held = sum(t.nbytes for t in model.state_dict().values() if isinstance(t, torch.Tensor))
    assert held == pytest.approx(base_weight_bytes(wide, 4), rel=0.02)


def test_adapter_optimizer_term_is_lora_weights_grads_and_adamw_state(tmp_path):
    params = _saved_model(tmp_path, SHAPE)
    model = load_base_model(tmp_path, 4, CPU_BF16)
    model = attach_lora(
        model, rank=8, alpha=16, dropout=0.0, target_modules=list(LLAMA_TARGETS), seed=0, gradient_checkpointing=False
    )
    _cast_trainable_to_fp32(model)  # what training does before the Trainer builds its optimizer
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable)  # the Trainer's default, adamw_torch
    ids = torch.randint(0, SHAPE.vocab, (1, 16))
    causal_lm_loss(model, {"input_ids": ids, "labels": ids}).loss.backward()
    optimizer.step()
    held = sum(p.nbytes + p.grad.nbytes for p in trainable)
    held += sum(t.nbytes for state in optimizer.state.values() for t in state.values() if t.dim() > 0)
    shape = dataclasses.replace(SHAPE, params=params)
    recipe = Recipe(bits=4, lora_rank=8, lora_targets=LLAMA_TARGETS, batch_size=1, seq_length=16)
    assert held == estimate(shape, recipe).terms["adapter_optimizer"] == 16 * sum(p.numel() for p in trainable)


@pytest.mark.parametrize("dropout", [0.0, 0.05])
def test_layer_activations_term_is_what_a_4bit_lora_layer_saves(tmp_path, dropout):
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(_llama_config(1)).to(torch.bfloat16).save_pretrained(tmp_path)
    model = load_base_model(tmp_path, 4, CPU_BF16)
    model = attach_lora(
        model,
        rank=8,
        alpha=16,
        dropout=dropout,
        target_modules=list(LLAMA_TARGETS),
        seed=0,
        gradient_checkpointing=False,
    )
    model.train()
    inner = model.base_model.model.model
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    small, large = (_saved_bytes(inner.layers[0], inner.rotary_emb, n, weights) for n in (128, 256))
    assert (large - small) / 128 == layer_bytes_per_token(SHAPE, 8, LLAMA_TARGETS, dropout)


class PeakBytes(TorchDispatchMode):
    """Peak bytes of the storages the ops inside allocate and keep alive (what the CUDA caching
    allocator would count as allocated), tracked by weak references to each new storage."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        known = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and id(t.untyped_storage()) not in known:
                storage = t.untyped_storage()
                self.live.setdefault(storage.data_ptr(), (StorageWeakRef(storage), storage.nbytes()))
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out


@pytest.mark.parametrize(("dtype", "softcap"), [(torch.bfloat16, None), (torch.float32, None), (torch.bfloat16, 30.0)])
def test_loss_term_is_the_chunk_buffers_the_loss_allocates(dtype, softcap):
    torch.manual_seed(0)
    rows, hidden, vocab, chunk = 512, 64, 8192, 64
    weight = (torch.randn(vocab, hidden) * 0.1).to(dtype)
    h = torch.randn(rows, hidden).to(dtype).requires_grad_(True)
    labels = torch.randint(0, vocab, (rows,))
    with PeakBytes() as tracker:
        summed, _, _ = chunked_linear_cross_entropy(h, weight, labels, chunk=chunk, softcap=softcap)
    expected = chunked_loss_bytes(rows, vocab, hidden, chunk, weight.element_size(), softcap is not None)
    # the rest is a few [chunk] / [rows] vectors (indices, argmax, logsumexp)
    assert expected <= tracker.peak <= expected * 1.05, (tracker.peak, expected)
    summed.backward()


def test_activation_offloading_moves_each_layers_checkpointed_input():
    """With non-reentrant checkpointing, each layer's input is saved through the saved-tensor hooks
    of the surrounding context, which `save_on_cpu` is; under it the gradients are unchanged."""
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(_llama_config(3))
    model = prepare_for_training(model, gradient_checkpointing=True)
    model = peft.get_peft_model(
        model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    model.train()
    ids = torch.randint(0, SHAPE.vocab, (2, 48))
    batch = {"input_ids": ids, "labels": ids}
    assert isinstance(activation_offloading(True), torch.autograd.graph.save_on_cpu)

    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(tuple(t.shape)) or t, lambda t: t):
        causal_lm_loss(model, batch)
    assert packed.count((2, 48, SHAPE.hidden)) >= 3  # the three layers' inputs (and the final norm's)

    grads = []
    for offload in (False, True):
        model.zero_grad(set_to_none=True)
        with activation_offloading(offload):
            loss = causal_lm_loss(model, batch).loss
        loss.backward()  # outside the context, as the Trainer's training_step runs it
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0])


def test_estimate_recipe_is_what_training_runs(tmp_path):
    for batching in ("auto", "packed", "grouped", "padded"):
        for offloading in (True, False):
            settings = load_settings("demo", None, [f"batching={batching}", f"activation_offloading={offloading}"])
            for runtime in (CPU_BF16, CUDA):
                recipe = recipe_for(settings, runtime.device)
                assert recipe.packed == (resolve_batching(batching, runtime) == "packed")
                options = memory_options(settings, runtime)
                assert options["offload_activations"] == recipe.activation_offloading
                assert options["chunked_loss"] == (recipe.loss != "full")
                e = estimate(settings.architecture.shape, recipe)
                layers = settings.architecture.shape.layers
                if options["offload_activations"]:  # one layer's input is back on the GPU for its backward
                    assert e.terms["layer_inputs"] * layers == e.offloaded_cpu > 0
                else:
                    assert e.offloaded_cpu == 0
    demo = load_settings("demo", None, [])
    arguments = training_arguments(demo, tmp_path, CPU_BF16, "grouped")
    assert arguments.gradient_checkpointing is recipe_for(demo, "cpu").gradient_checkpointing is False


def test_full_logits_term_is_ten_bytes_per_logit():
    recipe = Recipe(bits=4, lora_rank=8, lora_targets=LLAMA_TARGETS, batch_size=2, seq_length=64, loss="full")
    assert estimate(SHAPE, recipe).terms["loss"] == 10 * 128 * SHAPE.vocab
