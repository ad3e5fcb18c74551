"""Scoring generated answers: exact match after SQuAD normalisation, ROUGE-L from rouge-score, and
which held-out rows are generated."""

import pytest

from tests.conftest import chat
from trainer.data.formats import Example
from trainer.evaluate.answers import answer_rows, exact_match, normalize, rouge_l, score_answers


def test_exact_match_ignores_case_punctuation_articles_and_spaces():
    assert normalize("  The parcel, ships  TOMORROW! ") == "parcel ships tomorrow"
    assert exact_match("the Parcel ships tomorrow.", "Parcel ships tomorrow") == 1.0
    assert exact_match("Parcel ships today", "Parcel ships tomorrow") == 0.0


def test_rouge_l_is_the_lcs_f1_of_words():
    assert rouge_l("your parcel ships tomorrow", "the parcel ships tomorrow") == pytest.approx(0.75)
    assert rouge_l("shipped", "ships") == 1.0  # the Porter stemmer
    assert rouge_l("nothing alike", "parcel ships tomorrow") == 0.0
    means, rows = score_answers(["a b c", "x"], ["a b c", "y"])
    assert means == {"eval_exact_match": 0.5, "eval_rouge_l": 0.5}
    assert rows == [{"exact_match": 1.0, "rouge_l": 1.0}, {"exact_match": 0.0, "rouge_l": 0.0}]


def test_answer_rows_are_chats_ending_with_an_answer_and_a_seeded_stable_choice():
    examples = [Example(f"k{i}", "d.jsonl", i, messages=chat(f"q{i}", f"a{i}")["messages"]) for i in range(20)]
    examples.append(Example("t", "t.jsonl", 1, text="plain text is not a question"))
    assert len(answer_rows(examples, None, 42)) == 20
    five = answer_rows(examples, 5, 42)
    assert len(five) == 5 and [r.reference for r in five] == [r.reference for r in answer_rows(examples, 5, 42)]
    assert {r.example.key for r in five} <= {r.example.key for r in answer_rows(examples + examples[:0], 6, 42)}
    assert {r.example.key for r in five} != {r.example.key for r in answer_rows(examples, 5, 7)}
    assert five[0].prompt == five[0].example.messages[:-1] and answer_rows(examples, 0, 42) == []
