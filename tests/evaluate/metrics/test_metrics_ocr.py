"""OCRBench's containment rule and its score out of 1000: worked examples."""

from __future__ import annotations

from raylayers.evaluate.metrics import METRICS
from raylayers.evaluate.metrics.ocr import ocr_hit, ocrbench_score


def test_ocr_hit():
    assert ocr_hit("The sign says STOP here", ["stop"])
    assert ocr_hit("line one\nline two", "one line")  # newlines become spaces
    assert not ocr_hit("stop", ["stop sign"])
    assert ocr_hit("x ^ { 2 }\n+ 1", ["x^{2}+1"], math=True)  # spaces and newlines dropped
    assert not ocr_hit("x ^ { 2 }", ["x^{2}"])
    assert not ocr_hit("X^{2}", ["x^{2}"], math=True)         # math keeps case (LaTeX)
    assert not ocr_hit("anything", ["", "  "])                # empty answers are ignored


def test_ocrbench_score():
    assert ocrbench_score([True] * 337 + [False] * 663) == 337  # the official 1000 questions: the hit count
    assert ocrbench_score([True, True, True, False]) == 750
    assert ocrbench_score([True, False, False]) == 333           # round(333.3...)
    assert ocrbench_score([]) == 0


def test_registry_ocr_contains():
    rows = [{"question_id": 1, "prediction": "It reads STOP", "answer": ["stop", "halt"], "options": []},
            {"question_id": 2, "prediction": "x ^ 2", "answer": "x^2", "options": [], "math": True},
            {"question_id": 3, "prediction": "x ^ 2", "answer": "x^2", "options": [],
             "subtask": "Handwritten Mathematical Expression Recognition"},
            {"question_id": 4, "prediction": "nothing", "answer": "something", "options": []}]
    result = METRICS["ocr_contains"](rows)
    assert result["score"] == 0.75 and result["score_1000"] == 750
    assert [q["correct"] for q in result["per_question"]] == [True, True, True, False]
