"""The one settings model: every knob of the configuration guide plus what training needs.

Sources, later ones winning: preset -> YAML file -> `--set key=value` flags (and Prefect flow
parameters, which are this model serialised). The `description` of each field is the text the CLI
help, the README settings table and the Prefect parameter docs show, so the guide's advice lives
here once.

Only pydantic, yaml and the catalog are imported: a bad setting is reported in well under a second,
before torch or any service is touched.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainer.catalog import ARCHITECTURES, resolve_architecture_key
from trainer.state import PROJECT_ROOT


class SettingsError(ValueError):
    """A bad setting: the message is one line naming the setting and what is allowed."""


QuantizationRank = Literal[2, 4, 8, "none"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    # --- General settings (the configuration guide) ---
    element_name: str = Field(
        "LLM Trainer",
        description="Name of this training element; rename it to tell training jobs or versions apart. "
        "Recorded as an MLflow tag and used to derive the registered model name.",
    )
    version: str = Field(
        "0.1.0",
        description="Version of this training element's configuration (e.g. 0.7.25), recorded as an MLflow tag.",
    )
    running_on: str = Field(
        "local",
        description="Where the job runs: 'local' (this process) or the Prefect work pool (optionally "
        "'pool/queue') a deployment targets, e.g. a GPU worker such as phx-node-02. Models like "
        "LLaMA 3 8B need a GPU with 24 GB+ VRAM for 16-bit LoRA, about 7-10 GB with 4-bit QLoRA.",
    )
    trained_artifact: str | None = Field(
        None,
        description="Optional: resume or continue fine-tuning from a previous result: a checkpoint "
        "folder (exact continuation, e.g. after an interruption), an adapter folder (warm start), or a "
        "registered model models:/NAME/VERSION, models:/NAME@champion or runs:/RUN_ID/model (warm start "
        "from its adapter). Must share the base architecture and tokenizer; recorded as parent_* tags.",
    )
    trained_artifact_if_unset: Literal["fail", "start_from_base"] = Field(
        "fail",
        description="When trained_artifact is a registry alias (models:/NAME@champion) that is not set yet (a new "
        "model): 'fail' stops before any training; 'start_from_base' trains a fresh adapter and records why "
        "(the scheduled-retraining deployment uses it, so its first run creates the first champion).",
    )
    base_model_architecture: str = Field(
        "tiny-llama",
        description="Base model to fine-tune (see `llm-trainer models`): LLaMA 3.1 8B Instruct for "
        "chatbots/RAG assistants/summarizers, Mistral 7B for small efficient assistants or coders, "
        "Gemma / OpenChat for lightweight assistants, Falcon 7B, LLaMA 13B for long documents.",
    )
    training_data_path: Path | None = Field(
        None,
        description="Required. Folder of *.jsonl or *.csv training files (chat `messages`, "
        "instruction/output, prompt/completion or text), as written by the LLM Dataset Generator.",
    )
    base_model_assets_path: Path | None = Field(
        None,
        description="Optional: a local folder with the base model's weights and tokenizer (custom "
        "checkpoint or pre-downloaded model). Empty: the HF cache, then the hub when online.",
    )
    enable_metrics: bool = Field(
        True,
        description="Log per-step loss and learning rate, and validation metrics, to MLflow. Useful "
        "for benchmarking and comparing runs.",
    )

    # --- Advanced training settings (the configuration guide) ---
    batch_size: int = Field(
        4,
        ge=1,
        le=1024,
        description="Examples per device per iteration. 7B-13B models: 2-8 depending on GPU memory. "
        "Smaller batches = more updates, better generalization; larger = faster, more stable.",
    )
    learning_rate: float = Field(
        1e-4,
        gt=0,
        le=1.0,
        description="Step size of the optimizer. Domain adaptation 1e-4 to 5e-5; instruction tuning "
        "5e-5 to 2e-5; refinement/polishing 1e-5 or lower.",
    )
    quantization_rank: QuantizationRank = Field(
        4,
        description="Bits the frozen base weights are quantized to: 4 = NF4 QLoRA with double "
        "quantization (balanced, recommended), 8 = LLM.int8 (higher accuracy, more memory), "
        "2 = very memory efficient (HQQ, group size 64; for low-end GPUs or long context, at a clear quality cost), "
        "'none' (or 16) = plain LoRA on 16/32-bit weights.",
    )
    save_every_n_iterations: int = Field(
        10,
        ge=1,
        description="Checkpoint every N iterations (optimizer steps, not epochs). 1 for prototyping "
        "or risky runs, 5+ for stable long runs.",
    )
    random_seed: int = Field(42, ge=0, description="Seed for data order, LoRA init and dropout: same seed, same data -> same adapter.")
    artifact_backup_save_path: str | None = Field(
        None,
        description="Where to back up the adapter, tokenizer, final checkpoint, settings and eval / data reports, "
        "with a MANIFEST.json of sha256 and sizes, verified after the copy: a folder or an fsspec URL (s3://, gs://, "
        "file://, memory://). Empty: <state>/backups. `llm-trainer restore` rebuilds a model from it.",
    )

    # --- What training needs beyond the guide ---
    max_steps: int | None = Field(None, ge=1, description="Iterations to train; wins over num_epochs when set.")
    num_epochs: float = Field(1.0, gt=0, description="Passes over the training split when max_steps is not set.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Batches accumulated per iteration (effective batch = batch_size x this).")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of iterations the learning rate warms up linearly.")
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule after warm-up."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the LoRA weights.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    lora_rank: int = Field(16, ge=1, le=1024, description="LoRA adapter rank: higher increases capacity and memory.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling (alpha / rank multiplies the update); 2x rank is a common choice.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_target_modules: list[str] | None = Field(
        None, description="Modules to adapt; empty = the architecture's default from the catalog ('all-linear' also works)."
    )
    batching: Literal["auto", "packed", "grouped", "padded"] = Field(
        "auto",
        description="How rows become batches. 'packed': each batch flattened into one padding-free sequence, "
        "position ids restarting per example (no token attends across examples). 'grouped': rows of similar "
        "length batched together (randomised groups of 50 batches), padded per batch. 'padded': random order, "
        "per-batch padding (the common recipe). 'auto': packed on CUDA, grouped on the CPU (faster there: "
        "the CPU attention runs a packed row as one masked square).",
    )
    num_processes: int = Field(
        1, ge=1, le=64,
        description="Data-parallel training processes per node (one per GPU; on the CPU, gloo processes). Above 1 "
        "the train task launches torchrun and the Trainer's own DDP; batch_size is per process, so the "
        "effective batch is batch_size x gradient_accumulation_steps x num_processes x num_nodes.",
    )
    num_nodes: int = Field(
        1, ge=1, le=1024,
        description="Machines taking part in data-parallel training. Above 1, the flow's node is node 0 and each "
        "other node runs the `llm-trainer join` command it prints; needs rdzv_endpoint, and the run outputs "
        "(LLM_TRAINER_HOME or output_dir) on a filesystem every node mounts.",
    )
    rdzv_endpoint: str | None = Field(
        None,
        description="host:port on node 0 where the nodes of a multi-node training meet (torchrun rendezvous); "
        "empty: a free local port (single node).",
    )
    train_on_prompt: bool = Field(False, description="Also train on prompt tokens; by default the loss covers the answers only.")
    eval_every_n_iterations: int | None = Field(
        None, ge=1, description="Also score the held-out rows every N iterations during training (empty: only at the end)."
    )
    allow_pickle_weights: bool = Field(
        False, description="Allow loading base weights from pickle (.bin) files; off: safetensors only, as pickles can run code."
    )
    max_seq_length: int = Field(1024, ge=16, description="Longest example in tokens; longer rows are reported, never silently truncated.")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="Share of rows held out for evaluation, chosen by a hash of the row (stable when rows are added).")
    num_sample_generations: int = Field(3, ge=0, description="Held-out prompts answered by the trained model and logged as a table.")
    max_new_tokens: int = Field(64, ge=1, description="Generation length for samples and the served model's default.")
    min_valid_rows: int = Field(8, ge=1, description="Stop before training when fewer rows pass the data contract.")
    max_invalid_fraction: float = Field(
        0.0, ge=0, le=1, description="Stop before training when more than this share of rows is quarantined (0: any bad row stops the run)."
    )
    dataset_format: Literal["chat", "sharegpt", "instruction", "prompt_completion", "text"] | None = Field(
        None,
        description="Force one format for every file: chat (messages), sharegpt (conversations), instruction "
        "(instruction/input/output), prompt_completion or text. Empty: each file's format is detected from its rows; "
        "rows of another format are quarantined as wrong_format.",
    )
    column_mapping: dict[str, Literal["messages", "conversations", "instruction", "input", "output", "prompt", "completion", "text"]] = Field(
        {},
        description="Rename CSV columns / top-level JSON fields before the format is detected, e.g. "
        "{question: prompt, answer: completion}. A renamed field replaces one already so named.",
    )
    overlong_rows: Literal["warn", "quarantine"] = Field(
        "warn",
        description="Rows longer than max_seq_length tokens (counted with the base model's tokenizer at validation): "
        "warn = report them with file and line, the trainer leaves them out; quarantine = quarantine them as "
        "too_many_tokens (counted by max_invalid_fraction). Never truncated.",
    )
    # --- Model lifecycle: evaluation baselines, promotion, merged export, refinement ---
    eval_data_path: Path | None = Field(
        None,
        description="Optional: a folder of *.jsonl / *.csv rows to evaluate on instead of the held-out split, checked "
        "against the same data contract. The held-out rows then go back to training; rows also in the eval data are "
        "left out of training.",
    )
    score_baselines: bool = Field(
        True,
        description="Also score the base model (no adapter) and the current champion on the same eval rows, logged as "
        "base_eval_* and champion_eval_*, so the run shows the improvement. Costs one more base model load.",
    )
    promotion_metric: Literal["eval_loss", "eval_perplexity", "eval_token_accuracy"] = Field(
        "eval_loss", description="Metric the promotion policy compares, measured on this run's eval rows for both the new version and the champion."
    )
    promotion_direction: Literal["minimize", "maximize"] = Field(
        "minimize", description="Whether a lower (loss, perplexity) or a higher (token accuracy) promotion_metric is better."
    )
    min_improvement: float = Field(
        0.0,
        ge=0,
        description="The new version becomes champion only if it beats the champion on promotion_metric by more than "
        "this (absolute). The first version of a model always becomes champion.",
    )
    auto_promote: bool = Field(
        True,
        description="Move the `champion` alias when the promotion policy passes. Off: only record the decision on the "
        "version; promote by hand with `llm-trainer promote`.",
    )
    export_merged: bool = Field(
        False,
        description="Also merge the adapter into the full-precision base (never into the 4-bit weights, which loses "
        "quality) and save it as safetensors in <output_dir>/merged, backed up with the rest.",
    )
    train_subset_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Train on this share of the training rows, chosen by a seeded row hash (stable when rows are "
        "added). `llm-trainer refine` sets it for its first stage.",
    )
    refine_subset_fraction: float = Field(
        0.25,
        gt=0,
        le=1,
        description="`llm-trainer refine`, stage 1: the share of the training rows it trains on, at learning_rate for "
        "max_steps. Stage 2 continues from stage 1's registered version on all rows.",
    )
    refine_learning_rate: float | None = Field(
        None, gt=0, le=1, description="`llm-trainer refine`, stage 2 (all rows): its learning rate; empty = learning_rate / 10."
    )
    refine_max_steps: int | None = Field(
        None, ge=1, description="`llm-trainer refine`, stage 2 (all rows): its iterations; empty = twice max_steps (or num_epochs when max_steps is empty)."
    )
    output_dir: Path | None = Field(None, description="Run outputs (checkpoints, adapter); empty = <state>/runs/<run name>.")
    registered_model_name: str | None = Field(
        None, description="Name in the MLflow model registry; empty = derived from element_name."
    )
    experiment_name: str = Field("llm-trainer", description="MLflow experiment the runs are recorded in.")
    keep_last_n_checkpoints: int = Field(3, ge=1, description="Older checkpoints are pruned; the newest N are kept.")
    logging_steps: int = Field(1, ge=1, description="Log training metrics every N iterations.")
    trust_remote_code: bool = Field(
        False, description="Run model code shipped with the weights. Off by default: only turn on for models you trust."
    )

    @model_validator(mode="before")
    @classmethod
    def _packing_is_batching(cls, values: Any) -> Any:
        # `packing: true/false` (settings files and checkpoints written before `batching`).
        if isinstance(values, dict) and "packing" in values and "batching" not in values:
            values = dict(values)
            packing = values.pop("packing")
            values["batching"] = "packed" if str(packing).strip().lower() in {"true", "1", "yes", "on"} else "padded"
        return values

    @field_validator("rdzv_endpoint")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._\-\[\]:]+:\d{1,5}", value):
            raise ValueError("expected host:port of node 0, e.g. 10.0.0.5:29500")
        return value

    @model_validator(mode="after")
    def _multi_node_needs_endpoint(self) -> Settings:
        if self.num_nodes > 1 and not self.rdzv_endpoint:
            raise ValueError("rdzv_endpoint: num_nodes > 1 needs host:port of node 0 where the nodes meet, e.g. 10.0.0.5:29500")
        return self

    @field_validator("base_model_architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        key = resolve_architecture_key(value)
        if key is None:
            raise ValueError(f"unknown architecture {value!r}; choose one of: {', '.join(ARCHITECTURES)}")
        return key

    @field_validator("quantization_rank", mode="before")
    @classmethod
    def _quantization_words(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"none", "null", "off", "16", "32", ""}:
            return "none"
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    @field_validator("training_data_path")
    @classmethod
    def _data_path_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"{value} does not exist; point it at a folder of *.jsonl / *.csv files")
        return value

    @field_validator("base_model_assets_path")
    @classmethod
    def _assets_path_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "config.json").is_file():
            raise ValueError(f"{value} has no config.json; point it at a Hugging Face model folder")
        return value

    @field_validator("registered_model_name")
    @classmethod
    def _registry_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", value):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 128 characters)")
        return value

    # --- Derived values -------------------------------------------------------------------
    @property
    def architecture(self):
        return ARCHITECTURES[self.base_model_architecture]

    @property
    def model_name(self) -> str:
        """Registered model name: explicit, or a slug of element_name."""
        if self.registered_model_name:
            return self.registered_model_name
        slug = re.sub(r"[^a-z0-9]+", "-", self.element_name.lower()).strip("-")
        return slug or "llm-trainer"

    @property
    def quantization_bits(self) -> int | None:
        return None if self.quantization_rank == "none" else int(self.quantization_rank)

    def require_training_data(self) -> Path:
        if self.training_data_path is None:
            raise SettingsError(
                "training_data_path: required; set it to a folder of *.jsonl / *.csv files "
                "(e.g. --set training_data_path=examples/data/customer-support/chat)"
            )
        return self.training_data_path

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


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
        "description": "Legal Document Trainer: LLaMA 13B, batch 1, LR 1e-5, 4-bit (8 if memory allows). Long, specific documents.",
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


def parse_set_flags(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are read as YAML scalars so `1e-4`, `true`, `none`, `[a, b]` work."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set learning_rate=5e-5")
        try:
            values[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            values[key] = raw
        # YAML reads 1e-4 as a string (it wants 1.0e-4); numbers are what users mean.
        if isinstance(values[key], str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", values[key]):
            values[key] = float(values[key])
    return values


def read_yaml_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SettingsError(f"--config {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SettingsError(f"--config {path}{where}: malformed YAML ({problem}); fix the file and retry") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"--config {path}: expected a mapping of setting: value, got {type(data).__name__}")
    return data


def _format_validation_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "settings"
    kind = err["type"]
    if kind == "extra_forbidden":
        known = ", ".join(Settings.model_fields)
        return f"unknown setting {loc!r}; known settings: {known}"
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "literal_error" and loc == "quantization_rank":
        msg = "must be 2, 4, 8 or none (4 = NF4 QLoRA, recommended)"
    got = err.get("input")
    got_text = f" (got {got!r})" if got is not None and not isinstance(got, dict) and kind != "value_error" else ""
    if msg.startswith(f"{loc}:") or not err["loc"]:  # model-level checks name their setting first
        return msg
    return f"{loc}: {msg}{got_text}"


def build_settings(values: dict[str, Any]) -> Settings:
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(_format_validation_error(exc)) from None


def load_settings(
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: list[str] | None = None,
) -> Settings:
    """preset -> YAML file -> --set flags, later ones winning. No arguments at all means `demo`."""
    if preset is None and config_file is None:
        preset = "demo"
    values: dict[str, Any] = {}
    if preset is not None:
        values.update(preset_values(preset))
    if config_file is not None:
        file_values = read_yaml_file(config_file)
        if "preset" in file_values:  # a YAML file may start from a preset and override it
            values = {**preset_values(str(file_values.pop("preset"))), **values}
        values.update(file_values)
    values.update(parse_set_flags(overrides or []))
    return build_settings(values)
