"""Prompt text: LLaVA-1.5's exact formats, their inverse, and the vocabulary's word rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raylayers.prompts import (
    IMAGE_TOKEN,
    MULTIPLE_CHOICE_INSTRUCTION,
    SHORT_ANSWER_INSTRUCTION,
    format_question,
    option_letters,
    parse_question,
    split_words,
    with_image_token,
)

one_line = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=30)


def test_instructions_are_llava_15s():
    assert SHORT_ANSWER_INSTRUCTION == "Answer the question using a single word or phrase."
    assert MULTIPLE_CHOICE_INSTRUCTION == "Answer with the option's letter from the given choices directly."


def test_option_letters():
    assert option_letters(0) == []
    assert option_letters(4) == ["A", "B", "C", "D"]
    assert option_letters(26)[-1] == "Z"
    with pytest.raises(ValueError, match="27 options"):
        option_letters(27)
    with pytest.raises(ValueError):
        option_letters(-1)


def test_short_answer_format():
    assert format_question("How many circles are there?") == (
        "How many circles are there?\nAnswer the question using a single word or phrase."
    )


def test_multiple_choice_format():
    assert format_question("Where is the red circle?", ["top left", "center"]) == (
        "Where is the red circle?\n"
        "A. top left\n"
        "B. center\n"
        "Answer with the option's letter from the given choices directly."
    )


def test_with_image_token_prefixes_the_first_turn():
    assert with_image_token("Describe the image briefly.") == "<image>\nDescribe the image briefly."
    assert parse_question(with_image_token(format_question("Q?"))) == ("Q?", [])


def test_parse_rejects_unformatted_text():
    with pytest.raises(ValueError, match="not a formatted question"):
        parse_question("What is this?")
    with pytest.raises(ValueError, match="without lettered options"):
        parse_question(f"What is this?\n{MULTIPLE_CHOICE_INSTRUCTION}")


@given(question=one_line, options=st.lists(one_line, max_size=26), image_first=st.booleans())
def test_format_and_parse_round_trip(question, options, image_first):
    prompt = format_question(question, options)
    if image_first:
        prompt = with_image_token(prompt)
    assert parse_question(prompt) == (question, options)


@given(options=st.lists(one_line, min_size=1, max_size=26))
def test_option_lines_carry_letters_in_order(options):
    lines = format_question("Q?", options).split("\n")[1:-1]
    assert [line.split(". ", 1)[0] for line in lines] == option_letters(len(options))


def test_split_words_rule():
    assert split_words("<image>\nWhat's 42?") == ["<image>", "what", "'", "s", "4", "2", "?"]
    assert split_words("[0.00, 0.33]") == ["[", "0", ".", "0", "0", ",", "0", ".", "3", "3", "]"]
    assert split_words("A. top left (small): yes") == ["a", ".", "top", "left", "(", "small", ")", ":", "yes"]


@given(st.text(max_size=60))
def test_split_words_keeps_every_non_space_character_once(text):
    words = split_words(text)
    assert "".join(words) == "".join(text.lower().split())
    assert all(len(word) == 1 for word in words if any(ch.isdecimal() for ch in word))


def test_image_token_is_one_word():
    assert split_words(IMAGE_TOKEN) == [IMAGE_TOKEN]
