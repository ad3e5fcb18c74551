"""A restore proves the model it rebuilds would load (trainer/storage/loadable.py) before it writes or
registers anything: each file of a real backup (the tiny model as its base, a LoRA adapter made by
peft) is rewritten as an attacker would, the manifest re-sealed to match, and restore must refuse it
with one line; the untouched backup restores."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.cli import invoke
from trainer.storage.backup import MANIFEST, backup, sha256_file


@pytest.fixture(scope="module")
def real_backup(tmp_path_factory, tiny_model_dir) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = tmp_path_factory.mktemp("source")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(source / "adapter")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(source / "adapter")
    shutil.copytree(
        tiny_model_dir, source / "base_model", ignore=lambda d, names: [n for n in names if n.startswith("tokenizer")]
    )
    destination = tmp_path_factory.mktemp("backups")
    backup(
        {"adapter": source / "adapter", "base_model": source / "base_model"}, str(destination), "run-1", {"model": "m"}
    )
    return destination / "run-1"


def _reseal(copy: Path, relative: str, content: bytes) -> None:
    (copy / relative).write_bytes(content)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"][relative] = {"sha256": sha256_file(copy / relative), "bytes": len(content)}
    (copy / MANIFEST).write_text(json.dumps(manifest))


def _json_edit(relative: str, **changes):
    def edit(copy: Path) -> None:
        value = json.loads((copy / relative).read_text())
        value.update(changes)
        _reseal(copy, relative, json.dumps(value).encode())

    return edit


def _deep(relative: str):
    return lambda copy: _reseal(copy, relative, b"[" * 100_000 + b"]" * 100_000)


def _garbage(relative: str):
    return lambda copy: _reseal(copy, relative, os.urandom(4096))


def _template(copy: Path) -> None:
    config = json.loads((copy / "adapter" / "tokenizer_config.json").read_text())
    config["chat_template"] = "{% for i in range(200000000) %}{% endfor %}"
    _reseal(copy, "adapter/tokenizer_config.json", json.dumps(config).encode())
    if (copy / "adapter" / "chat_template.jinja").is_file():  # transformers 5 saves it beside the config
        _reseal(copy, "adapter/chat_template.jinja", config["chat_template"].encode())


def _wrong_tensors(copy: Path) -> None:
    import torch
    from safetensors.torch import save_file

    path = copy / "adapter" / "adapter_model.safetensors"
    save_file({"base_model.model.model.nowhere.lora_A.weight": torch.zeros(4, 8)}, str(path))
    _reseal(copy, "adapter/adapter_model.safetensors", path.read_bytes())


CASES = {
    "peft-type": (_json_edit("adapter/adapter_config.json", peft_type="EVIL"), "peft_type is 'EVIL'"),
    "rank-huge": (_json_edit("adapter/adapter_config.json", r=10**9), "r is 1000000000"),
    "rank-other": (_json_edit("adapter/adapter_config.json", r=8), "expected [8, "),
    "base-config-deep": (_deep("base_model/config.json"), "base_model/config.json can't be read"),
    "base-dims": (_json_edit("base_model/config.json", hidden_size=10**7), "hidden_size is 10000000"),
    "base-dims-other": (_json_edit("base_model/config.json", intermediate_size=64), "config.json says"),
    "base-weights": (_garbage("base_model/model.safetensors"), "base_model/model.safetensors: not a readable"),
    "adapter-weights": (_garbage("adapter/adapter_model.safetensors"), "adapter_model.safetensors"),
    "wrong-tensors": (_wrong_tensors, "is not a LoRA matrix of a layer of the base model"),
    "tokenizer-deep": (_deep("adapter/tokenizer.json"), "adapter/ tokenizer does not load"),
    "template": (_template, "chat template does not render a conversation"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_resealed_backup_that_would_not_load_is_not_restored(real_backup, tmp_path, case):
    tamper, needle = CASES[case]
    copy = tmp_path / "backup"
    shutil.copytree(real_backup, copy)
    tamper(copy)
    assert invoke("verify", copy).returncode == 0  # the bytes are what the re-sealed manifest says
    to = tmp_path / "restored"
    result = invoke("restore", copy, "--to", to, "--register", "--name", f"evil-{case}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert ("would not load" in lines[0] or "does not load" in lines[0]) and needle in lines[0], lines[0]
    assert not (to / "model").exists() and not (to / "files").exists()


def test_the_untouched_backup_restores(real_backup, tmp_path):
    result = invoke("restore", real_backup, "--to", tmp_path / "restored")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "restored" / "model" / "MLmodel").is_file()
