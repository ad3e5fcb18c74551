"""What actually runs: the device, compute dtype and quantization, and this process's place among
several (torchrun's RANK / WORLD_SIZE / LOCAL_RANK). Nothing heavy is imported at the top.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


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
        2: "2-bit (HQQ, group 64)",
        4: "nf4+double-quant (bitsandbytes)",
        8: "int8 (bitsandbytes LLM.int8)",
        None: "none",
    }[quantization_bits]
    return Runtime(device=device, compute_dtype=dtype, quantization=quantization)


def local_device_index() -> int:
    """This process's GPU: LOCAL_RANK under torchrun (one process per GPU), else the first."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def process_rank() -> int:
    """This process's global rank under torchrun; 0 when training in one process."""
    return int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)
