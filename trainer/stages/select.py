"""Select rows (only with `eval_data_path`, `train_subset_fraction`, or more held-out rows than
`eval_max_rows`): evaluate on a folder of its own instead of the held-out split, and/or train on a
seeded subset, and score a seeded sample of at most eval_max_rows held-out rows.

The eval rows are checked against the same data contract (and token limit) as the training data.
The held-out split then goes back to training, and a training row that also appears in the eval
data (same content hash) is left out of training, so the eval score is never measured on rows the
model trained on.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from trainer import registry
from trainer.config.settings import Settings
from trainer.data.contracts.report import ValidationReport, check_gates, write_report
from trainer.data.contracts.validate import options_from, validate_dataset
from trainer.data.example_table import join, keys_of, take
from trainer.data.formats import Example
from trainer.data.snapshot import DatasetSnapshot
from trainer.data.split import eval_sample, subset_examples
from trainer.errors import SettingsError
from trainer.model.assets import load_counting_tokenizer, resolve_tokenizer_dir

log = logging.getLogger("llm_trainer.stages")


@dataclass
class Selection:
    dataset: DatasetSnapshot
    notes: list[str]  # what changed, in words, for the task's log


def load_eval_rows(settings: Settings, output_dir: str | Path) -> tuple[ValidationReport, list[Example]]:
    """(validation report, valid eval examples) of `eval_data_path`; the report is written to
    <output_dir>/data/eval/. DataGateError when too many rows are quarantined or none is valid."""
    path = settings.eval_data_path
    if path is None or not Path(path).exists():
        raise SettingsError(f"eval_data_path: {path} does not exist; point it at a folder of data files")
    tokenizer = load_counting_tokenizer(resolve_tokenizer_dir(settings), settings.trust_remote_code)
    report, examples = validate_dataset(
        Path(path), None, tokenizer=tokenizer, max_seq_length=settings.max_seq_length, **options_from(settings)
    )
    write_report(report, Path(output_dir) / "data" / "eval")
    check_gates(report, 1, settings.max_invalid_fraction)
    return report, examples


def use_eval_rows(dataset: DatasetSnapshot, eval_rows: list[Example]) -> tuple[DatasetSnapshot, int]:
    """(`dataset` evaluating on `eval_rows`, number of training rows left out because they are eval rows)."""
    eval_keys = set(keys_of(eval_rows))
    candidates = join(dataset.train_examples, dataset.eval_examples)
    train = take(candidates, [i for i, key in enumerate(keys_of(candidates)) if key not in eval_keys])
    return dataset.with_rows(train=train, held_out=eval_rows), len(candidates) - len(train)


def needs_selection(settings: Settings, dataset: DatasetSnapshot) -> bool:
    """Whether the select stage changes anything: eval rows of their own, a training subset, or more
    held-out rows than eval_max_rows scores."""
    return (
        settings.eval_data_path is not None
        or settings.train_subset_fraction < 1
        or (settings.eval_max_rows is not None and len(dataset.eval_examples) > settings.eval_max_rows)
    )


def select_rows(settings: Settings, dataset: DatasetSnapshot) -> Selection:
    """The snapshot with the eval rows of `eval_data_path` and/or a seeded training subset, logged."""
    notes = []
    if settings.eval_data_path is not None:
        report, eval_rows = load_eval_rows(settings, dataset.output_dir)
        registry.log_artifact(dataset.run_id, report.report_path, "data/eval")
        registry.set_tags(
            dataset.run_id,
            {"eval_data_path": str(settings.eval_data_path), "eval_data_fingerprint": report.fingerprint},
        )
        dataset, overlap = use_eval_rows(dataset, eval_rows)
        notes.append(
            f"Evaluating on {settings.eval_data_path}: {len(eval_rows)} rows ({report.rows_quarantined} quarantined); "
            f"{overlap} training rows also in it left out of training"
        )
    if settings.train_subset_fraction < 1:
        before = len(dataset.train_examples)
        subset = subset_examples(dataset.train_examples, settings.train_subset_fraction, settings.random_seed)
        dataset = dataset.with_rows(train=subset)
        notes.append(
            f"Training on {len(subset)} of {before} rows (train_subset_fraction={settings.train_subset_fraction:g})"
        )
    held_out = len(dataset.eval_examples)
    scored = eval_sample(dataset.eval_examples, settings.eval_max_rows, settings.random_seed)
    if len(scored) < held_out:
        dataset = dataclasses.replace(dataset.with_rows(held_out=scored), eval_rows_held_out=held_out)
        notes.append(
            f"Scoring {len(scored)} of {held_out} held-out rows, a seeded sample "
            f"(eval_max_rows={settings.eval_max_rows}); the others are still kept out of training"
        )
    registry.log_metrics(
        dataset.run_id,
        {"train_rows": len(dataset.train_examples), "eval_rows": len(scored), "eval_rows_held_out": held_out},
    )
    return Selection(dataset, notes)
