"""What the validate stage hands on: the run's identity, the data's fingerprint and counts, and the
train / held-out examples."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from trainer.data.formats import Example


@dataclass
class DatasetSnapshot:
    run_id: str
    run_name: str
    output_dir: str
    fingerprint: str
    contract_version: str
    format: str | None
    rows_total: int
    rows_valid: int
    rows_quarantined: int
    report_path: str
    train_examples: Sequence[Example] = field(repr=False)  # a list, or a view of the validated rows on disk
    eval_examples: Sequence[Example] = field(repr=False)
    rows_overlong: int = 0
    cached: bool = False
    training_hash: str = ""  # the settings that change the weights (trainer/stages/unchanged.py)
    eval_rows_held_out: int = 0  # held-out rows before eval_max_rows sampled eval_examples from them (0: not sampled)

    def with_rows(
        self, train: Sequence[Example] | None = None, held_out: Sequence[Example] | None = None
    ) -> DatasetSnapshot:
        """This snapshot with other training and/or eval rows (a subset, rows from eval_data_path)."""
        changes = {"train_examples": train} if train is not None else {}
        if held_out is not None:
            changes["eval_examples"] = held_out
        return dataclasses.replace(self, **changes)
