"""Which rows train and which are held out, by a seeded hash of each row's own content.

A row's side depends only on its content and the seed, so adding rows elsewhere never moves an
existing row between train and eval (which a shuffled index split would). The choices read only
the rows' keys and return views (`take`): a table of a million rows is split without decoding it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from trainer.data.example_table import keys_of, take
from trainer.data.formats import Example


def _share(salt: str, key: str) -> float:
    return int(hashlib.sha256(f"{salt}{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def split_examples(
    examples: Sequence[Example], eval_fraction: float, seed: int
) -> tuple[Sequence[Example], Sequence[Example]]:
    """Held-out split by a seeded hash of each row's content.

    A row's side depends only on its own content and the seed, so adding rows elsewhere never moves
    an existing row between train and eval (which a shuffled index split would).
    """
    if eval_fraction <= 0:
        return examples, take(examples, [])
    train, held_out = [], []
    for i, key in enumerate(keys_of(examples)):
        (held_out if _share(f"{seed}:", key) < eval_fraction else train).append(i)
    if not held_out and len(train) > 1:  # tiny data sets still get one eval row
        held_out.append(train.pop())
    return take(examples, train), take(examples, held_out)


def subset_examples(examples: Sequence[Example], fraction: float, seed: int) -> Sequence[Example]:
    """A seeded share of `examples`, chosen by each row's own hash (like the eval split, but with its
    own salt so it is independent of it): adding rows never changes which old rows are in."""
    if fraction >= 1:
        return examples
    chosen = [i for i, key in enumerate(keys_of(examples)) if _share(f"subset:{seed}:", key) < fraction]
    return take(examples, chosen or [0][: len(examples)])


def eval_sample(held_out: Sequence[Example], max_rows: int | None, seed: int) -> Sequence[Example]:
    """At most `max_rows` of the held-out rows, chosen by each row's own seeded hash (its own salt):
    the same rows for the adapter, the base and the champion, and for every run on the same data."""
    if max_rows is None or len(held_out) <= max_rows:
        return held_out
    keys = keys_of(held_out)
    ranked = sorted(
        range(len(keys)), key=lambda i: hashlib.sha256(f"eval-sample:{seed}:{keys[i]}".encode()).hexdigest()
    )
    return take(held_out, sorted(ranked[:max_rows]))
