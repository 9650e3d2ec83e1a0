"""TextVQA's and GQA's official rules, from lmms-eval's own code (EvolvingLMMs-Lab/lmms-eval commit 75571cfe,
`lmms_eval/tasks/_task_utils/vqa_eval_metric.py`, `lmms_eval/tasks/textvqa/utils.py`, `lmms_eval/api/metrics.py`
`exact_match_hf_evaluate`): each case's official score worked out by reading that code, step by step."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from raylayers.evaluate.metrics import METRICS
from raylayers.evaluate.metrics.vqa import (
    gqa_answer,
    gqa_exact_match,
    normalize_answer,
    official_vqa_accuracy,
    official_vqa_answer,
    vqa_accuracy,
)

TEN = 10

# (prediction, the 10 human answers, lmms-eval's accuracy)
TEXTVQA_CASES = [
    # the contraction table is vqaEval.py's: these apostrophe-less forms are restored ...
    ("maam", ["ma'am"] * TEN, 1.0),
    ("whered", ["where'd"] * TEN, 1.0),
    ("twas", ["'twas"] * TEN, 1.0),           # the table writes "'twas"; "'twas" itself is left alone
    ("oclock", ["o'clock"] * TEN, 1.0),
    # ... and these are not: "shes", "lets" are no keys; "Im" is one, but words are lowercased before the look-up
    ("shes", ["she's"] * TEN, 0.0),           # "she's" becomes "she 's" ("'s" split off), "shes" stays
    ("im", ["i'm"] * TEN, 0.0),
    ("lets", ["let's"] * TEN, 0.0),
    ("whats", ["what's"] * TEN, 0.0),         # "whats" -> "what's", but "what's" -> "what 's" (lmms-eval only)
    ("what's", ["what's"] * TEN, 1.0),
    ("man's", ["mans"] * TEN, 0.0),
    # numbers, articles, punctuation
    ("Two", ["2"] * TEN, 1.0),                # unanimous humans: vqaEval.py would not normalise (0.0); lmms-eval does
    ("two", ["2"] * 3 + ["3"] * 7, 0.9),      # leave-one-out: (3 * 2/3 + 7 * 1) / 10
    ("2", ["2"] * 2 + ["3"] * 8, 0.6),
    ("2", ["2"] + ["3"] * 9, 0.3),
    ("none", ["0"] * TEN, 1.0),
    ("The cat", ["cat"] * TEN, 1.0),
    ("an apple", ["apple"] * TEN, 1.0),
    ("1,000", ["1000"] * TEN, 1.0),           # "," is deleted in the first step
    ("t-shirt", ["t shirt"] * TEN, 1.0),      # a mark touching no space becomes a space
    ("x-ray - test", ["xray test"] * TEN, 1.0),  # one touching a space is deleted everywhere
    ("Yes?", ["yes"] * TEN, 1.0),
    ("e.g.", ["eg"] * TEN, 1.0),              # a period is deleted unless a digit follows
    ("2.5", ["2.5"] * TEN, 1.0),
    ("2.5", ["25"] * TEN, 0.0),
    ("a: b", ["a b"] * TEN, 0.0),             # ":" is on no list, so "a:" is no article: "a: b" vs "b"
    ("  Nokia\n", ["nokia"] * TEN, 1.0),
    ("dog", ["cat"] * TEN, 0.0),
]


@pytest.mark.parametrize("prediction, answers, score", TEXTVQA_CASES)
def test_textvqa_official(prediction, answers, score):
    assert official_vqa_accuracy(prediction, answers) == pytest.approx(score)


@pytest.mark.parametrize("raw, processed", [
    ("What's the Man's T-shirt, 1,000?", "what 's man 's t shirt 1000"),
    ("somebody'd", "somebodyd"),               # the official table's own inverted entry
    ("The Two dogs!", "2 dogs"),
    ("a.b.c", "abc"),
    ("." * 40, "." * 8),                       # at most 32 periods go (`re.UNICODE` passed as sub's count)
])
def test_official_vqa_answer(raw, processed):
    assert official_vqa_answer(raw) == processed


def test_textvqa_departure_single_answer():
    # lmms-eval's leave-one-out has no other human with one answer and gives 0; we use exact match
    assert official_vqa_accuracy("cat", ["the cat"]) == 1.0
    assert official_vqa_accuracy("dog", ["cat"]) == 0.0


def test_lenient_vqa_is_the_earlier_rule():
    # the lenient normalisation restores "shes", "im", "lets" and keeps "what's" whole
    assert vqa_accuracy("shes", ["she's"] * TEN) == vqa_accuracy("whats", ["what's"] * TEN) == 1.0
    assert normalize_answer("maam") == "maam"


# (prediction, answer, lmms-eval's GQA exact match)
GQA_CASES = [
    ("Yes", "yes", 1.0),
    ("yes.", "yes", 1.0),
    ("  left\n", "left", 1.0),                # every generated answer is stripped first
    ("yes .", "yes", 0.0),                    # "yes " after deleting "."
    ("the table", "table", 0.0),              # no article rule
    ("two", "2", 0.0),                        # no number rule
    ("t-shirt", "t-shirt", 1.0),
    ("T-Shirt!", "t-shirt", 1.0),             # "tshirt" both
    ("t shirt", "t-shirt", 0.0),              # "t shirt" vs "tshirt"
    ("Yes, it is", "yes", 0.0),
    ("dont", "don't", 1.0),                   # the apostrophe is punctuation
]


@pytest.mark.parametrize("prediction, answer, score", GQA_CASES)
def test_gqa_official(prediction, answer, score):
    assert gqa_exact_match(prediction, answer) == score


def test_registry_official_and_lenient():
    rows = [{"question_id": "1", "prediction": "shes", "answer": "she's", "options": [], "answers": ["she's"] * TEN},
            {"question_id": "2", "prediction": "Two", "answer": "2", "options": [], "answers": ["2"] * TEN}]
    result = METRICS["vqa_accuracy"](rows)
    assert result["score"] == 0.5 and result["score_lenient"] == 1.0
    assert [q["correct"] for q in result["per_question"]] == [0.0, 1.0]
    assert [q["parsed"] for q in result["per_question"]] == ["shes", "2"]
    gqa = METRICS["gqa"]([{"question_id": "1", "prediction": "The table.", "answer": "table", "options": []}])
    assert gqa["score"] == 0.0 and gqa["score_lenient"] == 1.0 and gqa["per_question"][0]["parsed"] == "the table"


# ------------------------------------------------------------------------------------------------ properties
_ascii = st.text(string.ascii_letters + string.digits + string.punctuation + " \n\t", max_size=30)
_changes = st.sampled_from([str.upper, str.lower, str.title, lambda s: f" {s}\n", lambda s: f"the {s}",
                            lambda s: f"{s}?", lambda s: s.replace(",", "")])


@given(_ascii, _changes)
def test_textvqa_equal_after_processing_scores_one(prediction, change):
    answer = change(prediction)
    assume(official_vqa_answer(prediction) == official_vqa_answer(answer))
    assert official_vqa_accuracy(prediction, [answer] * TEN) == 1.0


@given(_ascii, _ascii)
def test_textvqa_score_is_agreement_after_processing(prediction, answer):
    expected = float(official_vqa_answer(prediction) == official_vqa_answer(answer))
    assert official_vqa_accuracy(prediction, [answer] * TEN) == expected


@given(_ascii)
def test_official_vqa_answer_ignores_ascii_case(text):
    assert official_vqa_answer(text.upper()) == official_vqa_answer(text.lower())


@given(st.text(max_size=30), st.lists(st.sampled_from(string.punctuation), max_size=4), st.data())
def test_gqa_equal_after_lowercasing_and_punctuation_scores_one(answer, marks, data):
    prediction = answer.upper() if answer.upper().lower() == answer.lower() else answer
    for mark in marks:
        at = data.draw(st.integers(0, len(prediction)))
        prediction = prediction[:at] + mark + prediction[at:]
    assume(gqa_answer(prediction.strip()) == gqa_answer(answer))
    assert gqa_exact_match(f"  {prediction}\n", answer) == 1.0
