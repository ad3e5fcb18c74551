"""LoRA target modules checked against the base model's real layers, before any weight is loaded.

peft raises only once the base is loaded (minutes for an 8B model, after the data check) when a
target names no layer. The model's structure is in its config.json: built on the `meta` device
(accelerate's init_empty_weights: no memory, no weights read) it lists every Linear layer's name,
exactly as peft will see them, in about a second even for an 8B config.
"""

from __future__ import annotations

from pathlib import Path

from trainer.errors import SettingsError


def linear_module_names(model_dir: Path, trust_remote_code: bool = False) -> list[str]:
    """The dotted names of every Linear layer of the model in `model_dir`, from its config.json alone."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


def unmatched_targets(targets: list[str], names: list[str]) -> list[str]:
    """The targets no layer matches, by peft's rule for a list: the full name, or its dotted suffix."""
    return [t for t in targets if t != "all-linear" and not any(n == t or n.endswith(f".{t}") for n in names)]


def check_lora_targets(targets: list[str] | None, model_dir: Path, trust_remote_code: bool = False) -> None:
    """SettingsError naming the targets that match no Linear layer of the base in `model_dir`."""
    if not targets:
        return
    names = linear_module_names(model_dir, trust_remote_code)
    unknown = unmatched_targets(targets, names)
    if unknown:
        short = sorted({n.rsplit(".", 1)[-1] for n in names})
        raise SettingsError(
            f"lora_target_modules: {', '.join(unknown)} matches no Linear layer of the base model in {model_dir} "
            f"(its Linear layers: {', '.join(short)}); or use all-linear"
        )
