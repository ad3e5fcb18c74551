"""Merged export: the adapter folded into the full-precision base, saved as safetensors.

The merge is always into the base loaded *without* quantization (fp32 on the CPU, the GPU's 16-bit
compute dtype on CUDA): merging into 4-bit weights would round the update into the quantization
grid and lose most of what training learned. The result is a plain transformers model folder
(no peft needed to serve it), with the adapter's tokenizer beside it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from trainer.config.settings import Settings
from trainer.layout import MERGED_MARKER
from trainer.model.loading import load_adapter, load_base_model, load_tokenizer
from trainer.model.runtime import pick_runtime

log = logging.getLogger("llm_trainer.export")


def export_merged(settings: Settings, base_model_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Merge `adapter_dir` into the unquantized base and save to `out_dir` (once per run: a finished
    export is reused; an unfinished one is redone)."""
    out_dir = Path(out_dir)
    if (out_dir / MERGED_MARKER).is_file():
        return out_dir
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()
    runtime = pick_runtime(None)
    model = load_base_model(
        Path(base_model_dir), None, runtime, settings.trust_remote_code, settings.allow_pickle_weights
    )
    merged = load_adapter(model, Path(adapter_dir), trainable=False).merge_and_unload()
    merged.save_pretrained(staging, safe_serialization=True)
    load_tokenizer(Path(adapter_dir), settings.trust_remote_code).save_pretrained(staging)
    (staging / MERGED_MARKER).write_text(
        json.dumps(
            {
                "base_model_dir": str(base_model_dir),
                "adapter_dir": str(adapter_dir),
                "dtype": runtime.compute_dtype,
                "merged_into": "full-precision base (not the quantized weights)",
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    log.info(
        "Merged adapter into the %s base in %.1fs: %s", runtime.compute_dtype, time.perf_counter() - started, out_dir
    )
    return out_dir
