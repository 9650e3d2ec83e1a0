"""The multiple-choice benchmarks' official readers, from lmms-eval's own code (EvolvingLMMs-Lab/lmms-eval commit
75571cfe, `lmms_eval/tasks/<task>/utils.py`, `_task_utils/mcq_extract.py`, `mmbench/mmbench_evals.py`): for each
benchmark a table of (prediction, answer letter, official verdict) worked out by reading that code, then the
scorers' figures and a property per reader."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raylayers.evaluate.metrics import METRICS
from raylayers.evaluate.metrics.readers import (
    cv_bench_read,
    mcq_extract,
    mmbench_read,
    mmvp_read,
    scienceqa_read,
    seed_read,
)

# SEED-Bench: the stripped answer's first character, lower-cased, against the answer lower-cased
SEED = [("B", "B", True), ("b", "B", True), ("B. a dog", "B", True), ("  B\n", "B", True), ("(B)", "B", False),
        ("The answer is B", "B", False), ("", "B", False), ("Blue", "B", True), ("A", "B", False)]
# ScienceQA: the answer lower-cased is the letter, or it reads "X. ..." with X upper-case
SCIENCEQA = [("B", "B", True), ("b", "B", True), (" B ", "B", True), ("B.", "B", True), ("B. fire", "B", True),
             ("b. fire", "B", False), ("(B)", "B", False), ("B)", "B", False), ("B fire", "B", False),
             ("fire", "B", False), ("The answer is B.", "B", False), ("A.", "B", False)]
# CV-Bench: after "(" and spaces, the first character when it is a letter, upper-cased
CV_BENCH = [("B", "B", True), ("b", "B", True), ("(B)", "B", True), ("(b) 3", "B", True), (" ( B ) ", "B", True),
            ("B. 3", "B", True), ("3", "B", False), ("blue", "B", True), ("red", "A", False),
            ("The answer is B", "B", False), ("", "B", False)]
# MMVP: five patterns for A/B (any case), then the first character
MMVP = [("A", "A", True), ("(a)", "A", True), ("a.", "A", True), ("B dog", "B", True), ("The answer is B", "B", True),
        ("option b", "B", True), ("There is a dog", "A", True), ("There is a dog", "B", False), ("apple", "A", True),
        ("Closed", "B", False), ("Both A and B", "B", False), ("", "A", False)]
# RealWorldQA's letter questions: mcq_extract over A-D (upper-case letters only, ranked formats)
REALWORLDQA = [("B", "B", True), ("b", "B", False), ("(C)", "C", True), ("The answer is B.", "B", True),
               ("A cat.", "A", True), ("A cat.", "C", False), ("I think it's C because of D", "C", False),
               ("I think it's C because of D", "D", True), ("I pick C!", "C", True), ("nothing", "A", False)]
# MMBench, one copy, options cat/dog/owl: can_infer (letter words, marked letters, option text), then mcq_extract
MMBENCH = [("B", "B", True), ("b", "B", False), ("A cat.", "A", True), ("A cat.", "B", False),
           ("The answer is B because the dog is big", "B", True), ("A dog is sitting on the mat", "B", True),
           ("(B)", "B", True), ("B) dog", "B", True), ("The answer is (B).", "B", True), ("I pick C!", "C", True),
           ("E", "A", False), ("owl", "C", True), ("a picture", "A", False)]


def _cases(table):
    return [pytest.param(p, a, ok, id=f"{p!r}->{a}") for p, a, ok in table]


@pytest.mark.parametrize("prediction, answer, right", _cases(SEED))
def test_seed_bench(prediction, answer, right):
    assert (seed_read(prediction) == answer) is right


@pytest.mark.parametrize("prediction, answer, right", _cases(SCIENCEQA))
def test_scienceqa(prediction, answer, right):
    assert (scienceqa_read(prediction) == answer) is right


@pytest.mark.parametrize("prediction, answer, right", _cases(CV_BENCH))
def test_cv_bench(prediction, answer, right):
    assert (cv_bench_read(prediction) == answer) is right


@pytest.mark.parametrize("prediction, answer, right", _cases(MMVP))
def test_mmvp(prediction, answer, right):
    assert (mmvp_read(prediction) == answer) is right


@pytest.mark.parametrize("prediction, answer, right", _cases(REALWORLDQA))
def test_realworldqa_letters(prediction, answer, right):
    assert (mcq_extract(prediction, "ABCD") == answer) is right


@pytest.mark.parametrize("prediction, answer, right", _cases(MMBENCH))
def test_mmbench(prediction, answer, right):
    assert (mmbench_read(prediction, ["cat", "dog", "owl"]) == answer) is right


@pytest.mark.parametrize("prediction, answer, right", [
    ("dark red", "B", False),        # "red" and "dark red" are both in it: can_infer_text gives up, no capital letter
    ("a dark red one", "B", False),
    ("Dark red", "B", False),
    ("blue", "C", True),
])
def test_mmbench_option_texts_inside_other_options(prediction, answer, right):
    assert (mmbench_read(prediction, ["red", "dark red", "blue"]) == answer) is right


# ------------------------------------------------------------------------------------------------ the scorers
def _rows(predictions, answers, options=("cat", "dog", "owl"), **columns):
    rows = [{"question_id": str(i), "prediction": p, "answer": a, "options": list(options)}
            for i, (p, a) in enumerate(zip(predictions, answers))]
    for name, values in columns.items():
        for row, value in zip(rows, values):
            row[name] = value
    return rows


def test_official_and_lenient_scores_side_by_side():
    rows = _rows(["(B)", "b", "the answer is a dog"], ["B", "B", "B"])
    # SEED reads "(", "b" (right), "t"; the lenient reader reads B three times
    seed = METRICS["seed_bench"](rows)
    assert seed["score"] == pytest.approx(1 / 3) and seed["score_lenient"] == 1.0 == seed["accuracy_lenient"]
    assert [q["parsed"] for q in seed["per_question"]] == ["(", "B", "T"]
    assert [q["correct_lenient"] for q in seed["per_question"]] == [True, True, True]
    assert METRICS["scienceqa_img"](rows)["score"] == pytest.approx(1 / 3)  # only "b"
    assert METRICS["cv_bench"](rows)["score"] == pytest.approx(2 / 3)       # "(B)" and "b"; "the ..." reads T


def test_mmbench_circular_headline():
    answers = ["A", "B", "C", "B", "C", "A"]  # two questions, three circular copies each
    predictions = ["A", "The answer is (B).", "I pick C!", "B", "C", "a"]  # the last is lower-case: wrong
    rows = _rows(predictions, answers, group=[7, 7, 7, 8, 8, 8])
    result = METRICS["mmbench"](rows)
    assert result["headline"] == "circular_accuracy" and result["groups"] == 2
    assert result["score"] == result["circular_accuracy"] == 0.5 and result["accuracy"] == pytest.approx(5 / 6)
    assert result["score_lenient"] == result["circular_accuracy_lenient"] == 1.0
    partial = METRICS["mmbench"](rows[:4])  # question 8 has one copy of three: per-copy accuracy is the headline
    assert partial["headline"] == "accuracy" and partial["score"] == 1.0 and partial["circular_accuracy"] == 1.0


def test_mmvp_pair_headline():
    rows = _rows(["A", "(b)", "B", "apple"], ["A", "B", "A", "B"], options=("Open", "Closed"), group=[0, 0, 1, 1])
    result = METRICS["mmvp"](rows)
    assert result["headline"] == "pair_accuracy" and result["pairs"] == 2
    assert result["score"] == result["pair_accuracy"] == 0.5 and result["accuracy"] == 0.5
    partial = METRICS["mmvp"](rows[:3])  # the second pair is cut: accuracy; pair accuracy over the whole pair only
    assert partial["headline"] == "accuracy" and partial["score"] == pytest.approx(2 / 3)
    assert partial["pair_accuracy"] == 1.0 and partial["pairs"] == 1


def test_cv_bench_source_weighted_overall():
    rows = _rows(["A", "B", "A", "B", "B"], ["A", "A", "A", "A", "A"],
                 source=["ADE20K", "ADE20K", "COCO", "Omni3D", "Omni3D"])
    result = METRICS["cv_bench"](rows)
    assert result["sources"] == {"ADE20K": 0.5, "COCO": 1.0, "Omni3D": 0.0}
    assert result["score"] == result["accuracy"] == pytest.approx(2 / 5)  # lmms-eval's cv_bench_acc
    assert result["accuracy_source_weighted"] == pytest.approx(((0.5 + 1.0) / 2 + 0.0) / 2)
    assert METRICS["cv_bench"](rows[:3])["accuracy_source_weighted"] is None  # no Omni3D question


def test_realworldqa_scores_each_question_by_its_kind():
    rows = [{"question_id": "0", "prediction": "B", "answer": "B", "options": ["x", "y"], "source_answer": "B"},
            {"question_id": "1", "prediction": "Downhill.", "answer": "Downhill", "options": []},
            {"question_id": "2", "prediction": "three", "answer": "3", "options": []},
            # the dataset's answer was the option's text: officially a short answer, so the letter is wrong
            {"question_id": "3", "prediction": "B", "answer": "B", "options": ["red", "green"],
             "source_answer": "green"},
            {"question_id": "4", "prediction": "Green.", "answer": "B", "options": ["red", "green"],
             "source_answer": "green"}]
    result = METRICS["realworldqa"](rows)
    assert [q["correct"] for q in result["per_question"]] == [True, True, False, False, True]
    assert [q["correct_lenient"] for q in result["per_question"]] == [True, True, True, True, True]
    assert result["score"] == pytest.approx(3 / 5) and result["score_lenient"] == 1.0


# ------------------------------------------------------------------------------------------------ properties
_letter = st.sampled_from(string.ascii_uppercase)
_space = st.text(" \n\t", max_size=3)
_any = st.text(max_size=30)


@given(_letter, st.booleans(), _space, _any)
def test_seed_reads_the_first_character(letter, lower, before, rest):
    assert seed_read(before + (letter.lower() if lower else letter) + rest) == letter


@given(_letter, st.booleans(), _space, _space)
def test_scienceqa_reads_a_lone_letter_in_any_case(letter, lower, before, after):
    assert scienceqa_read(before + (letter.lower() if lower else letter) + after) == letter


@given(_letter, _any)
def test_scienceqa_reads_capital_period_and_refuses_small_period(letter, rest):
    assert scienceqa_read(f"{letter}.{rest}") == letter
    assert scienceqa_read(f"{letter.lower()}.{rest}") is None


@given(_letter, st.booleans(), st.text("( ", max_size=4), _any)
def test_cv_bench_reads_the_first_letter(letter, lower, opening, rest):
    assert cv_bench_read(opening + (letter.lower() if lower else letter) + rest) == letter


@given(st.sampled_from("ABab"), st.sampled_from(["{}", "({})", "{}.", "({}).", "{}. {rest}", "{} {rest}"]), _any)
def test_mmvp_reads_a_leading_letter(letter, template, rest):
    assert mmvp_read(template.format(letter, rest=rest)) == letter.upper()


@given(st.integers(1, 8), st.data(), _any)
def test_mcq_extract_reads_a_leading_choice_letter(count, data, rest):
    choices = string.ascii_uppercase[:count]
    letter = data.draw(st.sampled_from(choices))
    assert mcq_extract(f"{letter} {rest}", choices) == letter
    assert mcq_extract(f"{letter}", choices) == letter


_word = st.from_regex(r"[a-z]{2,8}", fullmatch=True)


@given(st.lists(_word, min_size=2, max_size=4, unique=True), st.data())
def test_mmbench_reads_a_bare_letter_and_an_option_text(options, data):
    index = data.draw(st.integers(0, len(options) - 1))
    letter = string.ascii_uppercase[index]
    assert mmbench_read(letter, options) == letter
    if not any(a in b for a in options for b in options if a != b):  # no option's text inside another's
        assert mmbench_read(options[index], options) == letter
