"""Which rows evaluate a run when `eval_data_path` is set.

The eval rows come from their own folder, checked against the same data contract (and token limit)
as the training data. The held-out split of the training data then goes back to training, and any
training row that also appears in the eval data (same content hash) is left out of training, so the
eval score is never measured on rows the model trained on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from trainer.settings import Settings, SettingsError


def load_eval_rows(settings: Settings, output_dir: str | Path):
    """(validation report, valid eval examples) of `eval_data_path`; the report is written to
    <output_dir>/data/eval/. DataGateError when too many rows are quarantined or none is valid."""
    from trainer.assets import load_counting_tokenizer, resolve_tokenizer_dir
    from trainer.contracts import check_gates, validate_dataset, write_report

    path = settings.eval_data_path
    if path is None or not Path(path).exists():
        raise SettingsError(f"eval_data_path: {path} does not exist; point it at a folder of *.jsonl / *.csv files")
    tokenizer = load_counting_tokenizer(resolve_tokenizer_dir(settings), settings.trust_remote_code)
    report, examples = validate_dataset(
        Path(path), None, settings.dataset_format, column_mapping=settings.column_mapping, tokenizer=tokenizer,
        max_seq_length=settings.max_seq_length, overlong_rows=settings.overlong_rows,
    )
    write_report(report, Path(output_dir) / "data" / "eval")
    check_gates(report, 1, settings.max_invalid_fraction)
    return report, examples


def use_eval_rows(dataset, eval_rows: list):
    """(`dataset` evaluating on `eval_rows`, number of training rows left out because they are eval rows)."""
    eval_keys = {e.key for e in eval_rows}
    candidates = list(dataset.train_examples) + list(dataset.eval_examples)
    train = [e for e in candidates if e.key not in eval_keys]
    return dataclasses.replace(dataset, train_examples=train, eval_examples=list(eval_rows)), len(candidates) - len(train)
