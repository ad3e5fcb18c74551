"""`llm-trainer estimate` answers "which GPU, and what to change": the smallest common GPU each
catalog model fits and, for a given card, setting changes that really make it fit."""

from __future__ import annotations

import json

from tests.cli import Result, invoke
from trainer.model.memory import COMMON_GPUS_GB, CUDA_CONTEXT_GIB


def _estimate(*args: str) -> Result:
    result = invoke("estimate", *args, columns=250)  # one table row per line
    assert result.returncode == 0, result.stderr
    return result


def _json(*args: str) -> dict:
    return json.loads(_estimate("--json", *args).stdout)


def test_smallest_gpu_is_the_first_common_card_that_holds_the_step():
    data = _json("--preset", "customer-service-bot")
    # the top level is the preset's own model and step, its total the same as that model's row
    assert data["model"] == "llama-3.1-8b-instruct" and data["tokens_per_step"] == 4 * 2048
    assert data["total_gib"] == data["models"]["llama-3.1-8b-instruct"]["total_gib"] > data["base_weights_gib"] > 5
    for key, model in data["models"].items():
        need = model["required_gib"] + CUDA_CONTEXT_GIB
        fits = [size for size in COMMON_GPUS_GB if need <= size]
        assert model["smallest_gpu_gb"] == (fits[0] if fits else None), key
        assert model["fits"] == bool(fits), key  # without --gpu: fits the largest common card
        if fits:
            assert model["changes_to_fit"] == [], key


def test_gpu_option_gives_changes_that_fit_that_card():
    card = 8.0
    data = _json("--preset", "customer-service-bot", "--gpu", str(card))
    tips = data["models"]["llama-3.1-8b-instruct"]["changes_to_fit"]
    assert any(t.startswith("batch_size=") for t in tips), tips
    assert any(t.startswith("max_seq_length=") for t in tips), tips
    for tip in tips:  # apply each piece of advice: the step then fits the card
        sets = [word.rstrip(";") for word in tip.replace(" with ", " ").split() if "=" in word]
        flags = [flag for s in sets for flag in ("--set", s)]
        after = _json("--preset", "customer-service-bot", *flags)
        assert after["required_gib"] + CUDA_CONTEXT_GIB <= card, (tip, after["required_gib"])
    # a model that already fits gets no advice; one no single change brings under the card says so
    assert data["models"]["tiny-llama"]["fits"] and data["models"]["tiny-llama"]["changes_to_fit"] == []
    assert not data["models"]["llama-13b"]["fits"] and data["models"]["llama-13b"]["changes_to_fit"] == []


def test_table_names_the_gpu_and_the_setting_to_change():
    out = _estimate("--preset", "customer-service-bot", "--gpu", "8").stdout
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    smallest = {k: m["smallest_gpu_gb"] for k, m in _json("--preset", "customer-service-bot")["models"].items()}
    for key in ("llama-3.1-8b-instruct", "llama-13b", "tiny-llama"):
        assert f"│ {smallest[key]} GB │" in rows[key], rows[key]
    assert "batch_size=" in rows["llama-3.1-8b-instruct"]
    assert "no single setting change fits" in rows["llama-13b"]
    assert "fits" in rows["tiny-llama"] and "to fit your 8 GB GPU" in " ".join(out.split())
