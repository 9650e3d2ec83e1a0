"""MME's yes/no/other reading and its acc + acc+ scores: worked examples with hand-computed numbers."""

from __future__ import annotations

import pytest

from raylayers.evaluate.metrics import METRICS
from raylayers.evaluate.metrics.mme import MME_COGNITION, MME_PERCEPTION, mme_read, mme_scores


def _mme_rows():
    return [  # existence: image 1 both right, image 2 one right; code_reasoning: image 3 one right
        {"question_id": 1, "image": "e1", "subtask": "existence", "prediction": "Yes", "answer": "Yes"},
        {"question_id": 2, "image": "e1", "subtask": "existence", "prediction": "No, there is none.", "answer": "No"},
        {"question_id": 3, "image": "e2", "subtask": "existence", "prediction": "yes", "answer": "Yes"},
        {"question_id": 4, "image": "e2", "subtask": "existence", "prediction": "Yes", "answer": "No"},
        {"question_id": 5, "image": "c1", "subtask": "code_reasoning", "prediction": "The answer is yes",
         "answer": "Yes"},  # "the " holds neither yes nor no: other, wrong
        {"question_id": 6, "image": "c1", "subtask": "code_reasoning", "prediction": "no", "answer": "No"},
    ]


def test_mme_read():
    assert [mme_read(t) for t in ["Yes.", " NO", "nope", "The answer is yes", ""]] == ["yes", "no", "no", "other",
                                                                                        "other"]


def test_mme_scores():
    scores = mme_scores(_mme_rows())
    # existence: acc = 100 * 3/4 = 75, acc_plus = 100 * 1/2 = 50 -> 125
    assert scores["subtasks"]["existence"] == {"acc": 75.0, "acc_plus": 50.0, "score": 125.0, "questions": 4,
                                               "images": 2}
    # code_reasoning: acc = 100 * 1/2 = 50, acc_plus = 0 -> 50
    assert scores["subtasks"]["code_reasoning"]["score"] == 50.0
    assert (scores["perception"], scores["cognition"], scores["total"]) == (125.0, 50.0, 175.0)
    assert len(scores["missing"]) == len(MME_PERCEPTION) + len(MME_COGNITION) - 2
    assert "existence" not in scores["missing"] and scores["other_subtasks"] == []


def test_mme_subtask_names_match_case_insensitively():
    rows = [{"image": "o", "subtask": "ocr", "prediction": "yes", "answer": "Yes"},
            {"image": "o", "subtask": "my_task", "prediction": "yes", "answer": "Yes"}]
    scores = mme_scores(rows)
    assert scores["subtasks"]["OCR"]["score"] == 200.0 and scores["perception"] == 200.0
    assert scores["other_subtasks"] == ["my_task"] and scores["total"] == 400.0


def test_registry_mme():
    result = METRICS["mme"](_mme_rows())
    # (perception 125 + cognition 50) / (200 * 2 present subtasks) = 0.4375
    assert result["score"] == pytest.approx(0.4375)
    assert result["perception"] == 125.0 and result["cognition"] == 50.0
    assert [q["parsed"] for q in result["per_question"]] == ["yes", "no", "yes", "yes", "other", "no"]
    assert [q["correct"] for q in result["per_question"]] == [True, True, True, False, False, True]
    assert METRICS["mme"]([])["score"] == 0.0
