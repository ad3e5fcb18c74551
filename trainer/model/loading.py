"""Loading the base model (quantized or not) and wrapping it in a LoRA adapter.

The only module that sets up bitsandbytes, hqq and peft. On CUDA it is the usual QLoRA path (NF4
with double quantization and bf16 compute, or LLM.int8); on the CPU bitsandbytes also runs, in
fp32 compute, which is how the tests and the demo exercise the real quantized path without a GPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

from trainer.model.runtime import Runtime, local_device_index

log = logging.getLogger("llm_trainer.model")


def load_tokenizer(path: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    from trainer.errors import SettingsError

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except RecursionError:  # a config or tokenizer file nested past Python's limit: not one a model ships
        raise SettingsError(f"{path}: a config or tokenizer file there is nested too deeply to read") from None
    if tokenizer.pad_token is None:
        # Padding positions are masked out of the loss, so reusing eos is safe.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _disable_cpu_bf16_inference_kernel(model) -> int:
    """Keep bitsandbytes' 4-bit layers on the trainable path on the CPU.

    On CPUs with AVX512-BF16, a `Linear4bit` switches to an inference-only kernel after any no-grad
    forward (an eval), and later backward passes then give the LoRA weights no gradient, silently.
    """
    count = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count


def load_base_model(
    path: Path,
    quantization_bits: int | None,
    runtime: Runtime,
    trust_remote_code: bool = False,
    allow_pickle_weights: bool = False,
):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per weight file is noise in pipeline logs
    dtype = getattr(torch, runtime.compute_dtype)
    # safetensors only unless pickles are explicitly allowed: a pickled .bin can run code on load.
    kwargs: dict = {
        "dtype": dtype,
        "trust_remote_code": trust_remote_code,
        "use_safetensors": None if allow_pickle_weights else True,
    }
    if quantization_bits == 4:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    elif quantization_bits == 8:
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    if quantization_bits is not None:
        kwargs["device_map"] = {"": local_device_index()} if runtime.device.startswith("cuda") else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    gpu = f"cuda:{local_device_index()}"
    if quantization_bits in (None, 2) and runtime.device.startswith("cuda"):
        model = model.to(gpu)
    if quantization_bits == 2:
        quantize_hqq(model, nbits=2, device=gpu if runtime.device.startswith("cuda") else "cpu")
    return model


HQQ_GROUP_SIZE = 64


def quantize_hqq(model, nbits: int, device: str) -> int:
    """Swap the decoder's linear layers for HQQ-quantized ones, after loading.

    transformers 5's `HqqConfig` path fails at load ("QuantizationMethod.HQQ is not available
    yet"), but hqq's own `HQQLinear` layers, swapped in afterwards, train under peft (which wraps
    them as `HqqLoraLinear`). The output head stays in full precision, as with bitsandbytes.
    """
    import torch
    from hqq.core.quantize import BaseQuantizeConfig, HQQLinear

    config = BaseQuantizeConfig(nbits=nbits, group_size=HQQ_GROUP_SIZE)
    dtype = next(model.parameters()).dtype
    output_head = model.get_output_embeddings()
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear) and child is not output_head:
                setattr(
                    module,
                    name,
                    HQQLinear(child, quant_config=config, compute_dtype=dtype, device=device, del_orig=True),
                )
                swapped += 1
    model.is_hqq_quantized = True
    log.info("HQQ: %d linear layers quantized to %d bits (group size %d)", swapped, nbits, HQQ_GROUP_SIZE)
    return swapped


def prepare_for_training(model, gradient_checkpointing: bool):
    """Freeze the base and set up activation checkpointing.

    Instead of peft's `prepare_model_for_kbit_training`, which upcasts every non-quantized weight to
    fp32: for LLaMA 3.1 8B that turns the 128k-vocabulary embedding and output head into 4.2 GB of
    frozen fp32 weights on the GPU. Frozen weights stay in the compute dtype; only the trainable
    LoRA weights are fp32 (see trainer.training).
    """
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return model


def activation_offloading(enabled: bool):
    """A context for the training forward: with gradient checkpointing (non-reentrant), the tensors
    saved for the backward outside the checkpointed layers are each layer's input and what the loss
    keeps; `save_on_cpu` moves them to pinned CPU memory and back when the backward needs them. The
    recomputation runs in the backward, outside this context, so it stays on the GPU. What it costs
    is a host-device copy per layer each way (benchmarks/gpu_qlora.py measures it)."""
    import contextlib

    if not enabled:
        return contextlib.nullcontext()
    import torch

    return torch.autograd.graph.save_on_cpu(pin_memory=torch.cuda.is_available())


def attach_lora(
    model,
    *,
    rank: int,
    alpha: int,
    dropout: float,
    target_modules: list[str] | str,
    seed: int,
    gradient_checkpointing: bool,
):
    """Wrap `model` in a fresh LoRA adapter. The seed is set here, right before the adapter is
    created, so the same seed always gives the same initial LoRA weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    model = prepare_for_training(model, gradient_checkpointing)
    set_seed(seed)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    if not torch.cuda.is_available():
        _disable_cpu_bf16_inference_kernel(model)
    return model


def load_adapter(model, adapter_dir: Path, trainable: bool):
    """Put a saved adapter on `model` (warm start or inference)."""
    import torch
    from peft import PeftModel

    if trainable:
        model = prepare_for_training(model, gradient_checkpointing=torch.cuda.is_available())
    model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)
    if not torch.cuda.is_available():
        _disable_cpu_bf16_inference_kernel(model)
    return model


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters, counting the values a quantized weight holds, not its storage.

    peft's own count (`get_nb_trainable_parameters`) unpacks bitsandbytes' 4-bit weights (two values
    a byte); HQQ's 2-bit `W_q` packs four values a byte too, so its original shape is counted instead.
    """
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable = sum(_stored_values(p) for p in model.parameters() if p.requires_grad)
        total = sum(_stored_values(p) for p in model.parameters())
    for module in model.modules():
        if type(module).__name__ == "HQQLinear" and getattr(module, "W_q", None) is not None:
            rows, columns = module.meta["shape"]
            total += rows * columns - module.W_q.numel()
    return trainable, total


def _stored_values(parameter) -> int:
    """A parameter's values, unpacking bitsandbytes' 4-bit storage as peft does."""
    if type(parameter).__name__ == "Params4bit":
        return parameter.numel() * 2 * parameter.element_size()
    return parameter.numel()
