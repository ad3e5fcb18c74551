import pytest

from trainer.catalog import ARCHITECTURES
from trainer.memory import ModelShape, Recipe, base_weight_bytes, estimate, estimate_for_settings
from trainer.settings import load_settings

LLAMA_1_7B = ModelShape(6.74e9, hidden=4096, layers=32, intermediate=11008, vocab=32000, heads=32, kv_heads=32, tied_embeddings=False)


def test_qlora_paper_7b_4bit_base_within_15_percent():
    # QLoRA paper (Dettmers et al. 2023), memory footprint figure: LLaMA 7B, 4-bit base 5,048 MB,
    # trained through peft's prepare_model_for_kbit_training (embeddings and head upcast to fp32).
    megabytes = base_weight_bytes(LLAMA_1_7B, 4, upcast_frozen_fp32=True) / 1e6
    assert megabytes == pytest.approx(5048, rel=0.15)


def test_torchtune_llama31_8b_qlora_peak_within_15_percent():
    # torchtune's LLaMA 3.1 8B QLoRA recipe on an RTX 4090: batch 2 x 2048 packed, 7.4 GiB peak.
    recipe = Recipe(bits=4, lora_rank=8, lora_targets=("q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
                    batch_size=2, seq_length=2048, activation_checkpointing=True, activation_offloading=True,
                    chunked_loss_chunks=8)
    assert estimate(ARCHITECTURES["llama-3.1-8b-instruct"].shape, recipe).total_gib == pytest.approx(7.4, rel=0.15)


def test_fewer_bits_fewer_bytes_and_guide_vram_claim():
    settings = load_settings("customer-service-bot", None, [])
    totals = {q: estimate_for_settings(settings.model_copy(update={"quantization_rank": q})).base_weights_gib for q in (2, 4, 8, "none")}
    assert totals[2] < totals[4] < totals[8] < totals["none"]
    # The guide: LLaMA 3 8B needs 24 GB+ without quantization.
    assert estimate_for_settings(settings.model_copy(update={"quantization_rank": "none", "batch_size": 2})).total_gib * 2**30 / 1e9 > 24


def test_catalog_shapes_match_published_parameter_counts():
    for arch in ARCHITECTURES.values():
        s = arch.shape
        kv = s.kv_dim
        if arch.family == "falcon":
            linear = s.layers * (s.hidden * (s.hidden + 2 * kv) + s.hidden * s.hidden + 2 * s.hidden * s.intermediate)
        else:
            linear = s.layers * (2 * s.hidden * s.hidden + 2 * s.hidden * kv + 3 * s.hidden * s.intermediate)
        assert linear + s.embedding_params == pytest.approx(s.params, rel=0.03), arch.key
