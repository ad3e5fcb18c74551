"""Loading the base model (quantized or not) and wrapping it in a LoRA adapter.

The only module that sets up bitsandbytes and peft. On CUDA it is the usual QLoRA path (NF4 with
double quantization and bf16 compute, or LLM.int8); on the CPU bitsandbytes also runs, in fp32
compute, which is how the tests and the demo exercise the real quantized path without a GPU.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("llm_trainer.model")


@dataclass(frozen=True)
class Runtime:
    """What actually ran: the device, compute dtype and quantization, for logs and MLflow tags."""

    device: str
    compute_dtype: str
    quantization: str

    def describe(self) -> str:
        return f"device={self.device} compute_dtype={self.compute_dtype} quantization={self.quantization}"


def pick_runtime(quantization_bits: int | None) -> Runtime:
    import torch

    if torch.cuda.is_available():
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        index = local_device_index()
        torch.cuda.set_device(index)  # one GPU per process under torchrun
        device = f"cuda ({torch.cuda.get_device_name(index)})"
    else:
        # bf16 matmuls on most CPUs are emulated and slower than fp32; fp32 is also exact to test.
        dtype, device = "float32", "cpu"
    quantization = {
        2: "2-bit (HQQ, group 64)", 4: "nf4+double-quant (bitsandbytes)", 8: "int8 (bitsandbytes LLM.int8)", None: "none",
    }[quantization_bits]
    return Runtime(device=device, compute_dtype=dtype, quantization=quantization)


def local_device_index() -> int:
    """This process's GPU: LOCAL_RANK under torchrun (one process per GPU), else the first."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def load_tokenizer(path: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
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
    path: Path, quantization_bits: int | None, runtime: Runtime, trust_remote_code: bool = False, allow_pickle_weights: bool = False
):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per weight file is noise in pipeline logs
    dtype = getattr(torch, runtime.compute_dtype)
    # safetensors only unless pickles are explicitly allowed: a pickled .bin can run code on load.
    kwargs: dict = {"dtype": dtype, "trust_remote_code": trust_remote_code, "use_safetensors": None if allow_pickle_weights else True}
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
                setattr(module, name, HQQLinear(child, quant_config=config, compute_dtype=dtype, device=device, del_orig=True))
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


def attach_lora(model, *, rank: int, alpha: int, dropout: float, target_modules: list[str] | str, seed: int, gradient_checkpointing: bool):
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
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
