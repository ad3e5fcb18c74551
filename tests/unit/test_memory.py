"""The memory estimate: published anchors, the issue's targets for our own path, and the advice.
(Each term against the code it models: tests/integration/test_memory_terms.py.)"""

import pytest

from trainer.config.catalog import ARCHITECTURES, ModelShape
from trainer.config.loading import load_settings
from trainer.model.memory import (
    CUDA_CONTEXT_GIB,
    Recipe,
    base_weight_bytes,
    changes_to_fit,
    estimate,
    estimate_for_settings,
    fit_advice,
    smallest_gpu,
)

LLAMA_1_7B = ModelShape(
    6.74e9, hidden=4096, layers=32, intermediate=11008, vocab=32000, heads=32, kv_heads=32, tied_embeddings=False
)
LLAMA_8B = ARCHITECTURES["llama-3.1-8b-instruct"].shape


def _ours(preset: str = "customer-service-bot", **update):
    settings = load_settings(preset, None, [])
    return settings.model_copy(update=update)


def test_qlora_paper_7b_4bit_base_within_15_percent():
    # QLoRA paper (Dettmers et al. 2023), memory footprint figure: LLaMA 7B, 4-bit base 5,048 MB,
    # trained through peft's prepare_model_for_kbit_training (embeddings and head upcast to fp32).
    megabytes = base_weight_bytes(LLAMA_1_7B, 4, upcast_frozen_fp32=True) / 1e6
    assert megabytes == pytest.approx(5048, rel=0.15)


def test_torchtune_llama31_8b_qlora_peak_within_15_percent():
    # torchtune's LLaMA 3.1 8B QLoRA recipe on an RTX 4090: batch 2 x 2048 packed, 7.4 GiB peak; LoRA
    # rank 8 on q, v, output and the MLP, no dropout, activation offloading, and its chunked output
    # loss (8 chunks of bf16 logits kept, one upcast at a time).
    recipe = Recipe(
        bits=4,
        lora_rank=8,
        lora_targets=("q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        batch_size=2,
        seq_length=2048,
        activation_offloading=True,
        loss="torchtune",
    )
    assert estimate(LLAMA_8B, recipe).total_gib == pytest.approx(7.4, rel=0.15)


def test_our_default_path_fits_the_issue_targets():
    llama = estimate_for_settings(_ours(batch_size=2))
    gemma = estimate_for_settings(_ours(base_model_architecture="gemma", batch_size=4))
    assert llama.recipe.loss in ("chunked", "liger") and llama.recipe.activation_offloading
    assert llama.total_gib <= 7.4, llama.as_dict()
    assert gemma.total_gib <= 8.0, gemma.as_dict()


def test_the_stock_transformers_path_is_what_the_loss_and_offloading_save():
    ours = estimate_for_settings(_ours(batch_size=2))
    stock = estimate_for_settings(_ours(batch_size=2, chunked_loss=False, activation_offloading=False))
    assert stock.recipe.loss == "full" and not stock.recipe.activation_offloading
    # full logits: bf16, fp32 upcast and its gradient over 4,096 tokens x 128,256 entries
    assert stock.loss_gib == pytest.approx(10 * 4096 * 128_256 / 2**30)
    assert stock.layer_inputs_gib == pytest.approx(32 * 4096 * 4096 * 2 / 2**30)  # kept on the GPU
    assert stock.total_gib - ours.total_gib > 4.5


def test_fewer_bits_fewer_bytes_and_guide_vram_claim():
    settings = _ours()
    totals = {
        q: estimate_for_settings(settings.model_copy(update={"quantization_rank": q})).base_weights_gib
        for q in (2, 4, 8, "none")
    }
    assert totals[2] < totals[4] < totals[8] < totals["none"]
    # The guide: LLaMA 3 8B needs 24 GB+ without quantization, on the common (stock transformers) path.
    stock = settings.model_copy(
        update={"quantization_rank": "none", "batch_size": 2, "chunked_loss": False, "activation_offloading": False}
    )
    assert estimate_for_settings(stock).required_gib * 2**30 / 1e9 > 24


def test_smallest_gpu_and_the_advice_that_makes_it_fit():
    settings = _ours(quantization_rank="none")
    e = estimate_for_settings(settings)
    gpu = smallest_gpu(e)
    assert gpu == 24 and e.required_gib + CUDA_CONTEXT_GIB <= 24 < e.required_gib + CUDA_CONTEXT_GIB + 8
    tips = changes_to_fit(settings, 16 - CUDA_CONTEXT_GIB)
    assert tips[0] == "quantization_rank=4"
    for tip in tips:  # every piece of advice really fits
        key, value = tip.split()[0].split("=")
        update = {key: int(value) if value.isdigit() else value}
        if key == "batch_size":
            update["gradient_accumulation_steps"] = int(tip.split("gradient_accumulation_steps=")[1].split()[0])
        assert estimate_for_settings(settings.model_copy(update=update)).required_gib <= 16 - CUDA_CONTEXT_GIB
    line = fit_advice(settings, e, 15.5)
    assert "exceeds the 15.5 GiB free" in line and "quantization_rank=4" in line and "24 GB" in line


def test_catalog_shapes_match_published_parameter_counts():
    for arch in ARCHITECTURES.values():
        s = arch.shape
        kv = s.kv_dim
        if arch.family == "falcon":
            linear = s.layers * (s.hidden * (s.hidden + 2 * kv) + s.hidden * s.hidden + 2 * s.hidden * s.intermediate)
        else:
            linear = s.layers * (2 * s.hidden * s.hidden + 2 * s.hidden * kv + 3 * s.hidden * s.intermediate)
        assert linear + s.embedding_params == pytest.approx(s.params, rel=0.03), arch.key
