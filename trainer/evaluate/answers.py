"""Scoring generated answers against the references: exact match and ROUGE-L.

For a support bot, users judge answers, not token losses. On the held-out rows (all, or a seeded
choice of `eval_generation_rows`), the last assistant turn is generated greedily from the
conversation before it and compared with the reference answer:

- exact match after SQuAD-style normalisation (case, punctuation, articles and whitespace ignored);
- ROUGE-L F1 (longest common subsequence of words) from Google's `rouge-score` package, with its
  Porter stemmer (pure code, nothing downloaded). Its tokenizer keeps ASCII letters and digits
  only, so text in other scripts scores 0 on ROUGE-L; exact match still applies.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from dataclasses import dataclass

from trainer.data.formats import Example

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class AnswerRow:
    example: Example
    prompt: list[dict]  # the conversation before the answer
    reference: str


def answer_rows(examples: list[Example], limit: int | None, seed: int) -> list[AnswerRow]:
    """Chat rows ending with an assistant answer; `limit` of them chosen by a seeded row hash (stable
    when rows are added), all when None."""
    rows = [
        AnswerRow(e, e.messages[:-1], e.messages[-1]["content"])
        for e in examples
        if e.messages and e.messages[-1]["role"] == "assistant" and e.messages[-1].get("content")
    ]
    if limit is None or limit >= len(rows):
        return rows
    ranked = sorted(rows, key=lambda r: hashlib.sha256(f"answers:{seed}:{r.example.key}".encode()).hexdigest())
    chosen = {id(r) for r in ranked[:limit]}
    return [r for r in rows if id(r) in chosen]


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def exact_match(answer: str, reference: str) -> float:
    return float(normalize(answer) == normalize(reference))


def rouge_l(answer: str, reference: str) -> float:
    return _scorer().score(reference, answer)["rougeL"].fmeasure


def score_answers(answers: list[str], references: list[str]) -> tuple[dict[str, float], list[dict[str, float]]]:
    """(mean eval_exact_match and eval_rouge_l, per-row scores) of `answers` against `references`."""
    rows = [
        {"exact_match": exact_match(a, r), "rouge_l": rouge_l(a, r)} for a, r in zip(answers, references, strict=True)
    ]
    if not rows:
        return {}, []
    means = {f"eval_{k}": sum(row[k] for row in rows) / len(rows) for k in ("exact_match", "rouge_l")}
    return means, rows


@functools.cache
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
