"""POPE's yes/no reading and its scores: worked examples with hand-computed numbers."""

from __future__ import annotations

import pytest

from raylayers.evaluate.metrics import METRICS
from raylayers.evaluate.metrics.pope import pope_read, pope_scores


@pytest.mark.parametrize("text, read", [
    ("Yes, there is a dog.", "yes"), ("No.", "no"), ("NO", "no"), ("There is no cat.", "no"),
    ("I do not see one. Yes, maybe", "no"), ("Yes. But no", "yes"), ("nothing", "yes"), ("", "yes"),
])
def test_pope_read(text, read):
    assert pope_read(text) == read


def test_pope_scores():
    predictions = ["Yes, there is a dog.", "No.", "There is no cat in the image.", "Yes", "I do not see one. Yes",
                   "yes", "Yes."]
    answers = ["yes", "no", "yes", "no", "no", "yes", "no"]
    # read: yes no no yes no yes yes -> TP = 2 (1st, 6th), FP = 2 (4th, 7th), TN = 2 (2nd, 5th), FN = 1 (3rd)
    scores = pope_scores(predictions, answers)
    assert (scores["tp"], scores["fp"], scores["tn"], scores["fn"]) == (2, 2, 2, 1)
    assert scores["accuracy"] == pytest.approx(4 / 7)
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))  # = 4/7
    assert scores["yes_ratio"] == pytest.approx(4 / 7)


def test_pope_scores_guard_zero_divisions():
    scores = pope_scores(["no", "No."], ["no", "no"])
    assert scores["accuracy"] == 1.0
    assert scores["precision"] == scores["recall"] == scores["f1"] == scores["yes_ratio"] == 0.0
    assert pope_scores([], [])["accuracy"] == 0.0
    with pytest.raises(ValueError):
        pope_scores(["yes"], ["maybe"])


def test_registry_pope_with_splits():
    rows = [{"question_id": 1, "prediction": "Yes", "answer": "yes", "options": [], "split": "random"},
            {"question_id": 2, "prediction": "No", "answer": "yes", "options": [], "split": "random"},
            {"question_id": 3, "prediction": "No", "answer": "no", "options": [], "split": "adversarial"},
            {"question_id": 4, "prediction": "Yes", "answer": "no", "options": [], "split": "adversarial"}]
    result = METRICS["pope"](rows)
    # TP 1, FN 1, TN 1, FP 1: accuracy 2/4, precision 1/2, recall 1/2, yes_ratio 2/4
    assert result["score"] == result["accuracy"] == 0.5
    assert result["precision"] == result["recall"] == result["f1"] == result["yes_ratio"] == 0.5
    assert result["splits"]["random"]["accuracy"] == 0.5 and result["splits"]["random"]["recall"] == 0.5
    assert result["splits"]["adversarial"]["precision"] == 0.0
    assert [q["parsed"] for q in result["per_question"]] == ["yes", "no", "no", "yes"]
