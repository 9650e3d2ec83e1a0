"""VQA answer normalisation, VQA accuracy and exact match: worked examples with hand-computed numbers, and
properties of the normalisation."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raylayers.evaluate.metrics import METRICS
from raylayers.evaluate.metrics.vqa import exact_match, normalize_answer, vqa_accuracy


@pytest.mark.parametrize("raw, normal", [
    ("The Two dogs!", "2 dogs"),
    ("  Yes.\n", "yes"),
    ("1,000", "1000"),
    ("2.5", "2.5"),
    ("t-shirt", "t shirt"),          # a mark touching no space becomes a space
    ("black, white", "black white"),  # one touching a space is deleted
    ("x-ray - test", "xray test"),   # ... everywhere in the answer, as in the official script
    ("none", "0"),
    ("Ten", "10"),
    ("an apple", "apple"),
    ("dont know", "don't know"),
    ("Whats\tthat", "what's that"),
    ("im sure", "i'm sure"),
    ("e.g. this", "eg this"),        # a period is deleted unless a digit follows
])
def test_normalize_answer(raw, normal):
    assert normalize_answer(raw) == normal


@given(st.text())
def test_normalize_answer_is_idempotent(text):
    once = normalize_answer(text)
    assert normalize_answer(once) == once


@given(st.text(string.printable))
def test_normalize_answer_ignores_case(text):
    assert normalize_answer(text.upper()) == normalize_answer(text.lower()) == normalize_answer(text)


_whitespace = st.text(" \n\t", max_size=3)


@given(st.text(), _whitespace, _whitespace)
def test_normalize_answer_ignores_surrounding_whitespace(text, before, after):
    assert normalize_answer(before + text + after) == normalize_answer(text)


@given(st.lists(st.from_regex(r"[A-Za-z0-9']{1,8}", fullmatch=True), min_size=1, max_size=6),
       st.data())
def test_normalize_answer_ignores_inserted_articles(words, data):
    position = data.draw(st.integers(0, len(words)))
    article = data.draw(st.sampled_from(["a", "an", "the", "The", "A"]))
    with_article = words[:position] + [article] + words[position:]
    assert normalize_answer(" ".join(with_article)) == normalize_answer(" ".join(words))


def test_vqa_accuracy_leave_one_out():
    # k of 10 humans agree: leaving out an agreeing human leaves k-1, another leaves k; each scores min(1, n/3).
    # k=3: (3 * 2/3 + 7 * 1) / 10 = 0.9 (not 1.0: one subset in three lacks a third agreeing human)
    assert vqa_accuracy("two", ["2"] * 3 + ["3"] * 7) == pytest.approx(0.9)
    # k=2: (2 * 1/3 + 8 * 2/3) / 10 = 18/30 = 0.6
    assert vqa_accuracy("two", ["2"] * 2 + ["3"] * 8) == pytest.approx(0.6)
    # k=1: (1 * 0 + 9 * 1/3) / 10 = 0.3
    assert vqa_accuracy("Two", ["2"] + ["3"] * 9) == pytest.approx(0.3)
    # k=4: every subset keeps at least 3 agreeing humans
    assert vqa_accuracy("2", ["2"] * 4 + ["3"] * 6) == 1.0
    assert vqa_accuracy("4", ["2"] * 10) == 0.0


def test_vqa_accuracy_with_few_answers():
    assert vqa_accuracy("The cat.", ["cat"]) == 1.0  # a single answer: exact match of normalised strings
    assert vqa_accuracy("dog", ["cat"]) == 0.0
    # 2 answers, both agree: each subset keeps 1 agreeing human -> 1/3
    assert vqa_accuracy("cat", ["cat", "Cat"]) == pytest.approx(1 / 3)
    # 4 answers, 3 agree: (3 * min(1, 2/3) + 1 * min(1, 3/3)) / 4 = (2 + 1) / 4
    assert vqa_accuracy("cat", ["cat"] * 3 + ["dog"]) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        vqa_accuracy("cat", [])


def test_exact_match():
    assert exact_match("The Red one.", "red one") == 1.0
    assert exact_match("red", "dark red") == 0.0


def test_registry_exact_match_and_vqa():
    rows = [{"question_id": 1, "prediction": "Two", "answer": "2", "options": [], "answers": ["2"] * 2 + ["3"] * 8},
            {"question_id": 2, "prediction": "the dog", "answer": "dog", "options": []}]
    vqa = METRICS["vqa_accuracy"](rows)
    # row 1: 2 of 10 agree -> 0.6; row 2: one answer, exact match -> 1.0; mean 0.8
    assert vqa["score"] == pytest.approx(0.8)
    assert [q["correct"] for q in vqa["per_question"]] == [pytest.approx(0.6), 1.0]
    assert [q["parsed"] for q in vqa["per_question"]] == ["2", "dog"]
    # exact match takes `answers` over `answer` too: "2" is among row 1's answers
    assert METRICS["exact_match"](rows)["score"] == 1.0
    assert METRICS["exact_match"]([])["score"] == 0.0
