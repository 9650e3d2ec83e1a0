"""OCRBench's containment rule and its score out of 1000: worked examples, the official verdicts read from lmms-eval's
`lmms_eval/tasks/ocrbench/utils.py` (commit 75571cfe, `ocrbench_process_results`)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raylayers.evaluate.metrics import METRICS
from raylayers.evaluate.metrics.ocr import OCR_MATH_TYPE, ocr_hit, ocrbench_score

# (prediction, accepted answers, dataset, lmms-eval's verdict)
OCRBENCH = [
    ("The sign says STOP here", ["stop"], "IIIT5K", True),
    ("ＳＴＯＰ", ["stop"], "IIIT5K", True),                     # full-width letters folded (lmms-eval's own step)
    ("ＳＴＯＰ", ["stop"], "HME100k", False),                   # ... but not for formulas
    ("stop　sign", ["stop sign"], "IIIT5K", True),             # the ideographic space folded too
    ("line one\nline two", ["one line"], "IIIT5K", True),     # newlines become spaces
    ("stop", ["stop sign"], "IIIT5K", False),
    ("x ^ { 2 }\n+ 1", ["x^{2}+1"], "HME100k", True),         # HME100k: every space (and newline) removed
    ("x ^ { 2 }", ["x^{2}"], "IIIT5K", False),
    ("X^{2}", ["x^{2}"], "HME100k", False),                    # ... and case kept (LaTeX)
    ("x^{2}", ["X^{2}", "x^{2}"], "HME100k", True),             # any accepted answer
]


@pytest.mark.parametrize("prediction, answers, dataset, hit", OCRBENCH)
def test_ocrbench_official(prediction, answers, dataset, hit):
    row = {"question_id": "0", "prediction": prediction, "answer": answers[0], "answers": answers, "options": [],
           "dataset": dataset, "question_type": OCR_MATH_TYPE if dataset == "HME100k" else "Regular Text Recognition"}
    assert METRICS["ocr_contains"]([row])["per_question"][0]["correct"] is hit


_ascii = st.text(string.ascii_letters + string.digits + string.punctuation + " \n", max_size=12)


@given(_ascii.filter(str.strip), _ascii, _ascii)
def test_ocr_hit_when_the_answer_is_inside_in_any_case(answer, before, after):
    assert ocr_hit(before + answer.upper() + after, [answer])


@given(_ascii.filter(lambda text: text.replace(" ", "").replace("\n", "")), _ascii, _ascii, st.data())
def test_ocr_formula_hit_whatever_the_spaces(answer, before, after, data):
    spaced = "".join(char + data.draw(st.sampled_from(["", " ", "  "])) for char in answer)
    assert ocr_hit(before + spaced + after, [answer], math=True)


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
