"""The configuration guide's use-case presets, plus the embedded default (`demo`).

Each preset is a partial settings dict; `trainer.config.loading` layers a YAML file and `--set`
flags over it.
"""

from __future__ import annotations

from typing import Any

from trainer.config.state import PROJECT_ROOT
from trainer.errors import SettingsError

# The guide's presets, plus the embedded default. Each is a partial settings dict.
DEMO_DATA = PROJECT_ROOT / "examples" / "data" / "customer-support" / "chat"


PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "description": "Embedded default: the tiny local model on the bundled customer-support data, "
        "4-bit base, about half a minute of training on 2 CPU cores.",
        "element_name": "LLM Trainer Demo",
        "base_model_architecture": "tiny-llama",
        "training_data_path": str(DEMO_DATA),
        "batch_size": 8,
        # The tiny base has seen only a short warm-up: at the guide's 1e-4 a demo-length run
        # barely moves the loss, so the demo uses a larger rate to show learning in seconds.
        "learning_rate": 3e-3,
        "quantization_rank": 4,
        "max_steps": 120,
        "save_every_n_iterations": 20,
        "max_seq_length": 512,
        "lora_rank": 16,
        "lora_alpha": 32,
        "max_new_tokens": 32,
        # Generated answers are scored (exact match, ROUGE-L) for the new version, the base and the
        # champion; 16 rows keep that to a few seconds of the demo.
        "eval_generation_rows": 16,
    },
    "customer-service-bot": {
        "description": "Customer Service Bot: LLaMA 3.1 8B, batch 4, LR 1e-4, 4-bit. Fast adaptation to ticket data.",
        "element_name": "Customer Service Bot",
        "base_model_architecture": "llama-3.1-8b-instruct",
        "batch_size": 4,
        "learning_rate": 1e-4,
        "quantization_rank": 4,
        "max_seq_length": 2048,
    },
    "healthcare-qa": {
        "description": "Healthcare QA Model: Mistral 7B, batch 2, LR 5e-5, 4-bit. Use medical references.",
        "element_name": "Healthcare QA Model",
        "base_model_architecture": "mistral-7b",
        "batch_size": 2,
        "learning_rate": 5e-5,
        "quantization_rank": 4,
        "max_seq_length": 2048,
    },
    "legal-document": {
        "description": "Legal Document Trainer: LLaMA 13B, batch 1, LR 1e-5, 4-bit (8 if memory allows). "
        "Long, specific documents.",
        "element_name": "Legal Document Trainer",
        "base_model_architecture": "llama-13b",
        "batch_size": 1,
        "learning_rate": 1e-5,
        "quantization_rank": 4,
        "gradient_accumulation_steps": 8,
        "max_seq_length": 4096,
    },
}


def preset_values(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise SettingsError(f"preset: unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return {k: v for k, v in PRESETS[name].items() if k != "description"}
