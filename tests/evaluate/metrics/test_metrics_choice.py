"""The multiple-choice letter reader, accuracy on letters and MMBench circular evaluation: worked examples, and
properties of the reader."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raylayers.evaluate.metrics import METRICS
from raylayers.evaluate.metrics.choice import circular_eval, circular_groups_correct, mc_accuracy, read_choice

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
_whitespace = st.text(" \n\t", max_size=3)
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
