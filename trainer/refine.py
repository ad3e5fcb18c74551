"""Two-stage refinement, as the configuration guide advises: "start with a small dataset and a larger
LR, then lower the LR and train longer on the full data".

Stage 1 trains on `refine_subset_fraction` of the training rows at `learning_rate` for `max_steps`
and is registered; stage 2 warm-starts from stage 1's *registered version* and trains on all rows
at `refine_learning_rate` (default: a tenth) for `refine_max_steps` (default: twice as long). Both
use the same eval rows, so their metrics compare. Stage 1 is an intermediate: it does not take the
champion alias by the policy (auto_promote off), except as the first version of a new model; stage 2
follows the promotion policy like any run.
"""

from __future__ import annotations

import dataclasses
import hashlib

from trainer.settings import Settings


def stage_settings(settings: Settings) -> tuple[Settings, Settings]:
    """(stage 1, stage 2) settings; stage 2's trained_artifact is filled in once stage 1 is registered."""
    first = settings.model_copy(update={"train_subset_fraction": settings.refine_subset_fraction, "auto_promote": False})
    steps = settings.refine_max_steps or (2 * settings.max_steps if settings.max_steps else None)
    second = settings.model_copy(update={
        "train_subset_fraction": 1.0,
        "learning_rate": settings.refine_learning_rate or float(f"{settings.learning_rate / 10:.6g}"),
        "max_steps": steps,
        "num_epochs": settings.num_epochs if steps else 2 * settings.num_epochs,
    })
    return first, second


def subset_examples(examples: list, fraction: float, seed: int) -> list:
    """A seeded share of `examples`, chosen by each row's own hash (like the eval split, but with its
    own salt so it is independent of it): adding rows never changes which old rows are in."""
    if fraction >= 1:
        return list(examples)
    chosen = [e for e in examples if int(hashlib.sha256(f"subset:{seed}:{e.key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction]
    return chosen or list(examples[:1])


def with_training_subset(dataset, fraction: float, seed: int):
    """`dataset` (any dataclass with train_examples) with its training rows cut to `fraction`."""
    return dataclasses.replace(dataset, train_examples=subset_examples(dataset.train_examples, fraction, seed))
