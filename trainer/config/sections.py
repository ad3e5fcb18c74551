"""The settings, section by section: each a pydantic model whose fields `Settings` inherits.

The sections only group the fields for a reader; every key is still a top-level setting (YAML,
`--set`, Prefect parameters, MLflow params), so `batch_size: 4` works wherever it did. A field's
`description` is the text the CLI help, the README settings table and the Prefect parameter docs
show, so the guide's advice lives here once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainer.config.catalog import ARCHITECTURES, resolve_architecture_key

QuantizationRank = Literal[2, 4, 8, "none"]
# allow_inf_nan=False: `inf` / `nan` in a float setting is refused (weight_decay=inf trained a NaN champion).
STRICT = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)


class GuideSettings(BaseModel):
    """The configuration guide's settings: general, then advanced training."""

    model_config = STRICT

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
        description="Required. Folder (or file) of *.jsonl, *.json, *.csv, *.parquet, gzip JSON or a `datasets` "
        "folder: chat `messages`, ShareGPT, instruction/output, prompt/completion or text (docs/data-contracts.md).",
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
    random_seed: int = Field(
        42,
        ge=0,
        le=2**32 - 1,  # numpy's seed range: transformers' set_seed seeds numpy
        description="Seed for data order, LoRA init and dropout: same seed, same data -> same adapter.",
    )
    artifact_backup_save_path: str | None = Field(
        None,
        description="Where to back up the adapter, tokenizer, final checkpoint, settings and eval / data reports, "
        "with a MANIFEST.json of sha256 and sizes, verified after the copy: a folder or an fsspec URL (s3://, gs://, "
        "file://, memory://). Empty: <state>/backups. `llm-trainer restore` rebuilds a model from it.",
    )

    @field_validator("artifact_backup_save_path")
    @classmethod
    def _openable_location(cls, value: str | None) -> str | None:
        """A URL whose scheme fsspec does not know, or whose package is missing (s3:// without s3fs),
        is refused here, before training, not by the backup stage after it."""
        if not value or "://" not in value:
            return value
        import fsspec

        protocol = fsspec.core.split_protocol(value)[0] or "file"
        try:
            fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"{protocol}:// can't be written here: {exc}") from None
        return value

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
            raise ValueError(f"{value} does not exist; point it at a folder of data files (*.jsonl, *.json, *.csv)")
        return value

    @field_validator("base_model_assets_path")
    @classmethod
    def _assets_path_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "config.json").is_file():
            raise ValueError(f"{value} has no config.json; point it at a Hugging Face model folder")
        return value


class DataSettings(BaseModel):
    """How rows are read, checked, held out and limited in length."""

    model_config = STRICT

    max_seq_length: int = Field(
        1024, ge=16, description="Longest example in tokens; longer rows are reported, never silently truncated."
    )
    eval_fraction: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Share of rows held out for evaluation, chosen by a hash of the row (stable when rows are added).",
    )
    min_valid_rows: int = Field(8, ge=1, description="Stop before training when fewer rows pass the data contract.")
    max_invalid_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Stop before training when more than this share of rows is quarantined (0: any bad row stops the "
        "run).",
    )
    dataset_format: Literal["chat", "sharegpt", "instruction", "prompt_completion", "text"] | None = Field(
        None,
        description="Force one format for every file: chat (messages), sharegpt (conversations), instruction "
        "(instruction/input/output), prompt_completion or text. Empty: each file's format is detected from its rows; "
        "rows of another format are quarantined as wrong_format.",
    )
    column_mapping: dict[
        str, Literal["messages", "conversations", "instruction", "input", "output", "prompt", "completion", "text"]
    ] = Field(
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
    duplicate_rows: Literal["drop", "quarantine", "keep"] = Field(
        "drop",
        description="Exact duplicate rows (same parsed content, over the whole folder): drop = train the first copy "
        "once and report the others with file and line (not invalid rows); quarantine = quarantine them as "
        "duplicate_row (counted by max_invalid_fraction); keep = train every copy.",
    )
    unresolved_placeholders: Literal["warn", "quarantine"] = Field(
        "warn",
        description="Answers that still hold LLaMA-Factory's {{name}} / {{author}} identity placeholders: warn = "
        "train them as written and say how many and where in the report and the log (LLaMA-Factory trains them too; "
        "replace the placeholders in the data to give the model its name); quarantine = quarantine those rows as "
        "unresolved_placeholder (counted by max_invalid_fraction).",
    )
    text_windows: bool = Field(
        False,
        description="Split plain-text rows over max_seq_length tokens into windows of at most max_seq_length tokens "
        "(each a training example, no end-of-text token until the last) instead of leaving them out. Chat rows are "
        "never split.",
    )
    text_window_overlap: int = Field(
        0, ge=0, description="With text_windows: tokens each window repeats from the one before (< max_seq_length / 2)."
    )
    tokenize_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="Processes that tokenize rows at validation and when preparing training rows: 0 = one per CPU "
        "core (at most 8) from 20,000 rows, one process below that; 1 = only the main process. The tokens are the "
        "same either way.",
    )

    @model_validator(mode="after")
    def _window_overlap_fits(self) -> Any:
        if self.text_window_overlap * 2 >= self.max_seq_length:
            raise ValueError(f"text_window_overlap: must be under half of max_seq_length ({self.max_seq_length})")
        return self


class LifecycleSettings(BaseModel):
    """The model's lifecycle: evaluation, baselines and samples, promotion, merged export, refinement."""

    model_config = STRICT

    num_sample_generations: int = Field(
        3, ge=0, description="Held-out answers shown in the run report (prompt, reference, answers)."
    )
    eval_max_rows: int | None = Field(
        1000,
        ge=1,
        description="Held-out rows scored (eval_loss, eval_perplexity, eval_token_accuracy; for the adapter, the base "
        "and the champion alike): a seeded sample of N when there are more, the same rows for every model and every "
        "run on the same data; empty = all. Keeps evaluation's time the same at 10 k and 1 M rows; the summary and "
        "MLflow (eval_rows, eval_rows_held_out) say how many were used.",
    )
    eval_generation_rows: int | None = Field(
        64,
        ge=0,
        description="Held-out rows whose last answer the model generates greedily and is scored on against the "
        "reference (eval_exact_match, eval_rouge_l; also for the base and the champion on the same rows): a seeded "
        "choice of N, empty = all of them, 0 = none. Generation is the slow part of evaluation (up to max_new_tokens "
        "per row, per model): raise it when these metrics decide promotion.",
    )
    max_new_tokens: int = Field(64, ge=1, description="Generation length for samples and the served model's default.")
    eval_data_path: Path | None = Field(
        None,
        description="Optional: a folder of data files to evaluate on instead of the held-out split, checked "
        "against the same data contract. The held-out rows then go back to training; rows also in the eval data are "
        "left out of training.",
    )
    score_baselines: bool = Field(
        True,
        description="Also score the base model (no adapter) and the current champion on the same eval rows, logged as "
        "base_eval_* and champion_eval_*, so the run shows the improvement. Costs one more base model load.",
    )
    promotion_metric: Literal[
        "eval_loss", "eval_perplexity", "eval_token_accuracy", "eval_exact_match", "eval_rouge_l"
    ] = Field(
        "eval_loss",
        description="Metric the promotion policy compares, measured on this run's eval rows for both the new "
        "version and the champion: the loss or perplexity of the answers, their token accuracy, or the generated "
        "answers' exact match / ROUGE-L against the references.",
    )
    promotion_direction: Literal["auto", "minimize", "maximize"] = Field(
        "auto",
        description="Whether a lower or a higher promotion_metric is better; auto: lower for eval_loss and "
        "eval_perplexity, higher for eval_token_accuracy, eval_exact_match and eval_rouge_l.",
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
    skip_if_unchanged: bool = Field(
        False,
        description="Stop after validation, training and registering nothing, when the data, the contract version "
        "and every setting that changes training (trained_artifact as written included) are those of the current "
        "champion: the run is tagged outcome=unchanged. For scheduled retraining on data that may not have grown.",
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
        None,
        gt=0,
        le=1,
        description="`llm-trainer refine`, stage 2 (all rows): its learning rate; empty = learning_rate / 10.",
    )
    refine_max_steps: int | None = Field(
        None,
        ge=1,
        description="`llm-trainer refine`, stage 2 (all rows): its iterations; empty = twice max_steps (or num_epochs "
        "when max_steps is empty).",
    )


class OutputSettings(BaseModel):
    """Where outputs go, what they are called, and what code may run."""

    model_config = STRICT

    output_dir: Path | None = Field(
        None, description="Run outputs (checkpoints, adapter); empty = <state>/runs/<run name>."
    )
    registered_model_name: str | None = Field(
        None, description="Name in the MLflow model registry; empty = derived from element_name."
    )
    experiment_name: str = Field("llm-trainer", min_length=1, description="MLflow experiment the runs are recorded in.")
    keep_last_n_checkpoints: int = Field(3, ge=1, description="Older checkpoints are pruned; the newest N are kept.")
    logging_steps: int = Field(1, ge=1, description="Log training metrics every N iterations.")
    trust_remote_code: bool = Field(
        False, description="Run model code shipped with the weights. Off by default: only turn on for models you trust."
    )
    allow_pickle_weights: bool = Field(
        False,
        description="Allow loading base weights from pickle (.bin) files; off: safetensors only, as pickles can run "
        "code.",
    )

    @field_validator("registered_model_name")
    @classmethod
    def _registry_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", value):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 128 characters)")
        return value
