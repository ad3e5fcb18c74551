"""Does a restored model load? Checked before anything is built from a backup or registered from it.

A backup's manifest proves its files are the bytes it lists, not that they are a model: an attacker
(or a bad disk) can rewrite the files and re-seal the manifest. A champion that does not load stops
`serve` and every resume from it, so a restore proves, without loading a single weight:

- the adapter config is a LoRA config of the pipeline's kind (peft_type LORA, a sane rank);
- the base config reads (no recursion bombs) and describes a model of published size, which is built
  on the meta device (no memory) to know every parameter's name and shape;
- every base weight file's safetensors header reads, and its tensors are exactly that model's
  parameters with their shapes (a tied lm_head may be absent);
- every adapter tensor is a lora_A / lora_B of one of those layers, with the rank and the layer's
  input and output sizes;
- the adapter's tokenizer loads and its chat template renders a conversation within its time bound.

The trade-off: a real load would prove more (the numbers themselves), but costs the base model's
memory and minutes for an 8B model; names, shapes and headers are what make a load fail.
"""

from __future__ import annotations

import json
from pathlib import Path

# Beyond every published causal LM by far: a config past these is not a model we can build, even on
# the meta device (10**7 layers would take hours to instantiate).
MAX_LAYERS, MAX_WIDTH, MAX_VOCAB = 1024, 131_072, 4_000_000


class NotLoadable(ValueError):
    """What in the restored files would stop the model from loading (one line)."""


def check_loadable(base_dir: Path | None, adapter_dir: Path) -> None:
    from trainer.errors import CheckpointError
    from trainer.train.checkpoints import verify_adapter

    config = _adapter_config(adapter_dir)
    try:
        verify_adapter(adapter_dir)  # the adapter weights load (the same check a resume makes)
    except CheckpointError as exc:
        raise NotLoadable(f"adapter/{str(exc).rsplit(': ', 1)[-1]}") from None  # without the staging path
    adapter_shapes = _header_shapes(adapter_dir / "adapter_model.safetensors", "adapter/adapter_model.safetensors")
    if base_dir is not None:
        expected = _base_parameters(base_dir)
        _check_base_weights(base_dir, expected)
        _check_adapter_shapes(adapter_shapes, expected, int(config["r"]))
    _check_tokenizer(adapter_dir)


def _adapter_config(adapter_dir: Path) -> dict:
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        raise NotLoadable("adapter/adapter_config.json is not valid JSON") from None
    if not isinstance(config, dict):
        raise NotLoadable("adapter/adapter_config.json is not a JSON object")
    if config.get("peft_type") != "LORA":
        raise NotLoadable(f"adapter/adapter_config.json: peft_type is {config.get('peft_type')!r}, not 'LORA'")
    rank = config.get("r")
    if type(rank) is not int or not 1 <= rank <= MAX_WIDTH:
        raise NotLoadable(f"adapter/adapter_config.json: r is {rank!r}, not a rank between 1 and {MAX_WIDTH}")
    return config


def _header_shapes(path: Path, label: str) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header (no tensor is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RecursionError) as exc:
        raise NotLoadable(f"{label}: not a readable safetensors file ({' '.join(str(exc).split())[:120]})") from None


def _base_parameters(base_dir: Path) -> dict[str, tuple[int, ...]]:
    """Every parameter of the model base_dir's config describes: name -> shape, built on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(base_dir, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise NotLoadable(f"base_model/config.json can't be read ({type(exc).__name__})") from None
    sizes = {
        "num_hidden_layers": (getattr(config, "num_hidden_layers", 0), MAX_LAYERS),
        "hidden_size": (getattr(config, "hidden_size", 0), MAX_WIDTH),
        "intermediate_size": (getattr(config, "intermediate_size", 0) or 0, 4 * MAX_WIDTH),
        "vocab_size": (getattr(config, "vocab_size", 0), MAX_VOCAB),
    }
    for name, (value, bound) in sizes.items():
        if type(value) is not int or not 0 <= value <= bound:
            raise NotLoadable(f"base_model/config.json: {name} is {value!r}, beyond any published model")
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except Exception as exc:  # a config transformers can't build: its own kinds of error
        raise NotLoadable(
            f"base_model/config.json does not describe a buildable model ({type(exc).__name__})"
        ) from None
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False):
        shapes = {k: v for k, v in shapes.items() if k != "lm_head.weight"} | {"lm_head.weight?": ()}
    return shapes


def _check_base_weights(base_dir: Path, expected: dict[str, tuple[int, ...]]) -> None:
    files = sorted(base_dir.glob("*.safetensors"))
    if not files:
        raise NotLoadable("base_model/ holds no safetensors weights")
    found: dict[str, tuple[int, ...]] = {}
    for path in files:
        found.update(_header_shapes(path, f"base_model/{path.name}"))
    required = {k: v for k, v in expected.items() if not k.endswith("?")}
    optional = {k.rstrip("?") for k in expected if k.endswith("?")}
    for name, shape in found.items():
        if name in optional:
            continue
        if name not in required:
            raise NotLoadable(f"base_model weights: {name} is not a parameter of the model config.json describes")
        if shape != required[name]:
            raise NotLoadable(
                f"base_model weights: {name} has shape {list(shape)}, config.json says {list(required[name])}"
            )
    missing = sorted(set(required) - set(found))
    if missing:
        raise NotLoadable(f"base_model weights: {len(missing)} parameters missing (first: {missing[0]})")


def _check_adapter_shapes(found: dict[str, tuple[int, ...]], base: dict[str, tuple[int, ...]], rank: int) -> None:
    if not found:
        raise NotLoadable("adapter/adapter_model.safetensors holds no tensors")
    for name, shape in found.items():
        stem, _, part = name.rpartition(".lora_")
        layer = stem.removeprefix("base_model.model.") + ".weight"
        if part not in ("A.weight", "B.weight") or layer not in base or len(base[layer]) != 2:
            raise NotLoadable(f"adapter weights: {name} is not a LoRA matrix of a layer of the base model")
        out_features, in_features = base[layer]
        want = (rank, in_features) if part == "A.weight" else (out_features, rank)
        if shape != want:
            raise NotLoadable(f"adapter weights: {name} has shape {list(shape)}, expected {list(want)} (r={rank})")


def _check_tokenizer(adapter_dir: Path) -> None:
    from trainer.errors import SettingsError, TemplateRenderError, TemplateTimeoutError
    from trainer.model.loading import load_tokenizer
    from trainer.model.templates import apply_template

    if not any(adapter_dir.glob("tokenizer*")):
        return  # served with the base model's tokenizer
    try:
        tokenizer = load_tokenizer(adapter_dir)
    except (SettingsError, OSError, ValueError, TypeError, KeyError) as exc:
        raise NotLoadable(f"adapter/ tokenizer does not load ({' '.join(str(exc).split())[:120]})") from None
    if getattr(tokenizer, "chat_template", None):
        try:
            apply_template(tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
        except (TemplateRenderError, TemplateTimeoutError) as exc:
            raise NotLoadable(f"adapter/ chat template does not render a conversation: {exc}") from None
