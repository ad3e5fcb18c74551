"""What one training needs (`TrainJob`) and what it gives back (`TrainResult`).

The job is also the launch spec of a data-parallel training: `TrainJob.write_spec` serialises it
under `<output_dir>/distributed/` (settings, paths, the rows as JSONL) and every process reads it
back with `TrainJob.read_spec`. No secrets go into it: the tracking URI reaches the workers through
their environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.config.loading import build_settings
from trainer.config.settings import Settings
from trainer.data.example_table import ExampleTable
from trainer.data.formats import Example

# The launch folder of a data-parallel training: the spec every process reads, rank 0's result,
# the first failing rank's error.
LAUNCH_DIR = "distributed"
SPEC = "spec.json"
RESULT = "result.json"
ERROR = "error.json"


@dataclass
class TrainJob:
    """One training: the settings, the base model, the rows, where outputs go and where to start from."""

    settings: Settings
    base_model_dir: Path
    train_examples: Sequence[Example] = field(repr=False)
    output_dir: Path
    eval_examples: Sequence[Example] = field(default_factory=list, repr=False)  # for eval_every_n_iterations
    resume_from: Path | None = None  # a checkpoint: exact continuation
    warm_start_adapter: Path | None = None  # an adapter: new optimizer and schedule
    checkpoint_meta: dict[str, Any] = field(default_factory=dict)  # recorded in every checkpoint's marker
    metrics_run_id: str | None = None  # the MLflow run rank 0 logs to, under torchrun

    @property
    def launch_dir(self) -> Path:
        return self.output_dir / LAUNCH_DIR

    def write_spec(self) -> Path:
        """Everything the worker processes need, under <output_dir>/distributed/; stale results removed."""
        folder = self.launch_dir
        folder.mkdir(parents=True, exist_ok=True)
        for stale in (RESULT, ERROR):
            (folder / stale).unlink(missing_ok=True)
        train_rows = write_examples(folder, "train", self.train_examples)
        eval_rows = write_examples(folder, "eval", self.eval_examples)
        spec = {
            "settings_yaml": self.settings.to_yaml(),
            "base_model_dir": str(self.base_model_dir),
            "output_dir": str(self.output_dir),
            "resume_from": str(self.resume_from) if self.resume_from else None,
            "warm_start_adapter": str(self.warm_start_adapter) if self.warm_start_adapter else None,
            "train_rows": train_rows,
            "eval_rows": eval_rows,
            "checkpoint_meta": self.checkpoint_meta,
            "metrics_run_id": self.metrics_run_id,
        }
        write_json_atomic(folder / SPEC, spec)
        return folder / SPEC

    @classmethod
    def read_spec(cls, spec_path: Path) -> TrainJob:
        """The job a launch spec describes; its settings validated again, as every process and node reads them."""
        spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
        folder = Path(spec_path).parent
        optional = {key: Path(spec[key]) if spec.get(key) else None for key in ("resume_from", "warm_start_adapter")}
        return cls(
            settings=spec_settings(spec_path),
            base_model_dir=Path(spec["base_model_dir"]),
            train_examples=read_examples(folder / spec["train_rows"]),
            output_dir=Path(spec["output_dir"]),
            eval_examples=read_examples(folder / spec["eval_rows"]) if spec.get("eval_rows") else [],
            checkpoint_meta=spec.get("checkpoint_meta") or {},
            metrics_run_id=spec.get("metrics_run_id"),
            **optional,
        )


@dataclass
class TrainResult:
    output_dir: str
    adapter_dir: str
    global_step: int
    train_loss: float
    loss_history: list[float]
    runtime: dict[str, str]
    trainable_parameters: int
    total_parameters: int
    train_examples: int
    rows_too_long: int
    resumed_from: str | None
    seconds: float  # the whole call: loading, tokenizing, training, saving
    train_seconds: float = 0.0  # the training loop alone (Trainer.train)
    non_padding_tokens: int = 0  # tokens the loop trained on, padding excluded (all processes)
    padding_fraction: float = 0.0  # share of the batch positions that were padding
    checkpoints: list[str] = field(default_factory=list)
    rows_prepared: str = ""  # "prepared" (tokenized now) or "reused" (tokenized by an earlier attempt or run)
    prepare_seconds: float = 0.0


def spec_settings(spec_path: Path) -> Settings:
    """The settings a launch spec carries (validated again, as every process and node reads them)."""
    from trainer.config.yaml_reader import load_yaml

    text = json.loads(Path(spec_path).read_text(encoding="utf-8"))["settings_yaml"]
    return build_settings(load_yaml(text, f"{spec_path}: settings_yaml"))


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # several ranks may race to write error.json
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def write_examples(folder: Path, name: str, examples: Sequence[Example]) -> str:
    """The rows for the launch spec, under `folder`; the file name read_examples takes. A view of the
    validated table is written as its path and positions (every process reads the same file); a list
    as JSON Lines."""
    if isinstance(examples, ExampleTable):
        positions = None
        if examples.positions is not None:
            positions = f"{name}.positions.npy"
            np.save(folder / positions, examples.positions)
        file = f"{name}.table.json"
        write_json_atomic(
            folder / file, {"path": str(examples.path), "positions": positions, "sha256": examples.digest}
        )
        return file
    file = f"{name}.jsonl"
    tmp = folder / f".{file}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        for example in examples:
            fh.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")
    os.replace(tmp, folder / file)
    return file


def read_examples(path: Path) -> Sequence[Example]:
    if path.name.endswith(".table.json"):
        spec = json.loads(path.read_text(encoding="utf-8"))
        positions = np.load(path.parent / spec["positions"]) if spec["positions"] else None
        return ExampleTable(spec["path"], positions, spec.get("sha256"))
    with path.open(encoding="utf-8") as fh:
        return [Example(**json.loads(line)) for line in fh if line.strip()]
