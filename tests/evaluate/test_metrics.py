"""Benchmark metrics: worked examples with hand-computed numbers, and properties of the answer readers."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raylayers.evaluate.metrics import (
    METRICS,
    MME_COGNITION,
    MME_PERCEPTION,
    circular_eval,
    circular_groups_correct,
    exact_match,
    mc_accuracy,
    mme_read,
    mme_scores,
    normalize_answer,
    ocr_hit,
    ocrbench_score,
    pope_read,
    pope_scores,
    read_choice,
    vqa_accuracy,
)

# ------------------------------------------------------------------------------------------------ normalisation


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


# ------------------------------------------------------------------------------------------------ VQA and GQA


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


# ------------------------------------------------------------------------------------------------ multiple choice

OPTIONS = ["blue circle", "red square", "green"]


@pytest.mark.parametrize("text", [
    "B", "b", "(B)", "(b)", "B.", "B)", "B:", "B) red", "B. red", "The answer is B", "Answer: B", "answer: b",
    "the answer is (B).", "[B]", "  \nB\n", "**B**", "The correct answer is option B", "Option B", "B is correct",
    "red square", "RED SQUARE", "a red square", "A red square", "B red square", "It is (B), clearly.",
    "the answer is a red square",
])
def test_read_choice_reads_b(text):
    assert read_choice(text, OPTIONS) == "B"


@pytest.mark.parametrize("text, letter", [
    ("I think A is right", "A"),
    ("A is correct", "A"),
    ("Green.", "C"),
    ("D", None),                      # beyond the options
    ("The answer is D", None),
    ("(D) green", "C"),               # an invalid letter is skipped and reading goes on
    ("A or B", None),                 # ambiguous
    ("blue circle or red square", None),
    ("I'm not sure", None),
    ("", None),
    ("  \n ", None),
    ("A square", None),               # the article, and no option's text
])
def test_read_choice_other_cases(text, letter):
    assert read_choice(text, OPTIONS) == letter


def test_read_choice_option_texts():
    assert read_choice("A square", ["circle", "square"]) == "B"            # "A" is the article here
    assert read_choice("A circle", ["circle", "square"]) == "A"            # ... or the letter naming that text
    assert read_choice("it is dark red", ["red", "dark red"]) == "B"       # nested matches: the longer wins
    assert read_choice("reddish", ["red", "blue"]) is None                 # whole words only
    assert read_choice("F", []) == "F"                                     # no options: any letter


TEMPLATES = ["{L}", "{l}", "({L})", "({l})", "{L}.", "{L})", "{L}:", "{L}) {text}", "{L}. {text}", "The answer is {L}",
             "The answer is {L}.", "Answer: {L}", "the answer is ({L}).", "[{L}]", "Option {L}"]
_word = st.from_regex(r"[A-Za-z0-9]{2,6}", fullmatch=True)
_option_text = st.lists(_word, min_size=1, max_size=3).map(" ".join)


_any_text = st.text(min_size=1, max_size=20)


@st.composite
def options_and_index(draw, texts=_any_text):
    options = draw(st.lists(texts, min_size=1, max_size=6, unique_by=lambda text: " ".join(text.lower().split())))
    return options, draw(st.integers(0, len(options) - 1))


@given(options_and_index(), st.sampled_from(TEMPLATES), _whitespace, _whitespace)
def test_read_choice_reads_formatted_letters(drawn, template, before, after):
    options, index = drawn
    letter = string.ascii_uppercase[index]
    text = before + template.format(L=letter, l=letter.lower(), text=options[index]) + after
    assert read_choice(text, options) == letter


def _not_nested(options):
    lowered = [" ".join(option.lower().split()) for option in options]
    return not any(a in b for i, a in enumerate(lowered) for j, b in enumerate(lowered) if i != j)


@given(options_and_index(_option_text).filter(lambda drawn: _not_nested(drawn[0])),
       st.sampled_from([str, str.lower, str.upper, str.title]), _whitespace, _whitespace)
def test_read_choice_reads_option_texts(drawn, case, before, after):
    options, index = drawn
    assert read_choice(before + case(options[index]) + after, options) == string.ascii_uppercase[index]


@given(st.text(max_size=40), st.integers(1, 6))
def test_read_choice_never_returns_a_letter_beyond_the_options(text, count):
    assert read_choice(text, ["x"] * count) in (None, *string.ascii_uppercase[:count])


def test_mc_accuracy():
    # B == B; "The answer is A" != B; "red" is option A == A  ->  2 of 3
    predictions = ["B", "The answer is A", "red"]
    options = [["x", "y"], ["x", "y"], ["red", "blue"]]
    assert mc_accuracy(predictions, ["B", "B", "A"], options) == pytest.approx(2 / 3)
    assert mc_accuracy([], [], []) == 0.0


def test_circular_eval():
    rows = [{"group": "q1", "prediction": "A", "answer": "A"}, {"group": "q1", "prediction": "b", "answer": "B"},
            {"group": "q1", "prediction": "C", "answer": "C"}, {"group": "q2", "prediction": "A", "answer": "A"},
            {"group": "q2", "prediction": None, "answer": "B"}, {"group": "q3", "prediction": "D", "answer": "C"}]
    assert circular_groups_correct(rows) == {"q1": True, "q2": False, "q3": False}
    assert circular_eval(rows) == pytest.approx(1 / 3)
    assert circular_eval([]) == 0.0


# ------------------------------------------------------------------------------------------------ POPE


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


# ------------------------------------------------------------------------------------------------ OCRBench


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


# ------------------------------------------------------------------------------------------------ MME


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


# ------------------------------------------------------------------------------------------------ the registry


def test_registry_names():
    assert set(METRICS) == {"mc_accuracy", "exact_match", "vqa_accuracy", "ocr_contains", "pope", "yes_no", "mme"}
    assert METRICS["yes_no"] is METRICS["pope"]


def test_registry_mc_accuracy_with_circular_groups():
    options = ["cat", "dog"]
    rows = [{"question_id": "q1-0", "prediction": "A", "answer": "A", "options": options, "group": "q1"},
            {"question_id": "q1-1", "prediction": "dog", "answer": "B", "options": options[::-1], "group": "q1"},
            {"question_id": "q2-0", "prediction": "B", "answer": "A", "options": options, "group": "q2"},
            {"question_id": "q2-1", "prediction": "???", "answer": "B", "options": options, "group": "q2"}]
    result = METRICS["mc_accuracy"](rows)
    # "dog" is options[::-1][0] -> A, wrong; so only q1-0 is right: 1/4, and no group is right in every shift
    assert result["score"] == 0.25 and result["n"] == 4
    assert result["circular_accuracy"] == 0.0 and result["groups"] == 2
    assert [q["parsed"] for q in result["per_question"]] == ["A", "A", "B", None]
    assert [q["correct"] for q in result["per_question"]] == [True, False, False, False]
    assert [q["question_id"] for q in result["per_question"]] == ["q1-0", "q1-1", "q2-0", "q2-1"]
    assert "circular_accuracy" not in METRICS["mc_accuracy"]([{k: v for k, v in rows[0].items() if k != "group"}])


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


def test_registry_ocr_contains():
    rows = [{"question_id": 1, "prediction": "It reads STOP", "answer": ["stop", "halt"], "options": []},
            {"question_id": 2, "prediction": "x ^ 2", "answer": "x^2", "options": [], "math": True},
            {"question_id": 3, "prediction": "x ^ 2", "answer": "x^2", "options": [],
             "subtask": "Handwritten Mathematical Expression Recognition"},
            {"question_id": 4, "prediction": "nothing", "answer": "something", "options": []}]
    result = METRICS["ocr_contains"](rows)
    assert result["score"] == 0.75 and result["score_1000"] == 750
    assert [q["correct"] for q in result["per_question"]] == [True, True, True, False]


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


def test_registry_mme():
    result = METRICS["mme"](_mme_rows())
    # (perception 125 + cognition 50) / (200 * 2 present subtasks) = 0.4375
    assert result["score"] == pytest.approx(0.4375)
    assert result["perception"] == 125.0 and result["cognition"] == 50.0
    assert [q["parsed"] for q in result["per_question"]] == ["yes", "no", "yes", "yes", "other", "no"]
    assert [q["correct"] for q in result["per_question"]] == [True, True, True, False, False, True]
    assert METRICS["mme"]([])["score"] == 0.0


@pytest.mark.parametrize("name", sorted(METRICS))
def test_registry_empty_rows(name):
    result = METRICS[name]([])
    assert result["score"] == 0.0 and result["per_question"] == [] and result["n"] == 0
