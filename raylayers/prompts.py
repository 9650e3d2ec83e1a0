"""Exact prompt text shared by the world, training and evaluation.

A small model answers well only when it is asked exactly the way it was trained, so every piece of prompt text the
world writes and the evaluator sends lives here. The formats are LLaVA-1.5's evaluation prompts: a short-answer
question ends with `SHORT_ANSWER_INSTRUCTION`; a multiple-choice question lists its options as "A. ..." lines and
ends with `MULTIPLE_CHOICE_INSTRUCTION`.

`split_words` is the word rule of the world's closed vocabulary (`raylayers.world.vocabulary`), kept here so that a
word-level tokenizer and the tests split text the same way the vocabulary was built.
"""

from __future__ import annotations

import re
from typing import Sequence

IMAGE_TOKEN = "<image>"  # the image placeholder of LLaVA text and the tokenizers' token for it: its one owner
"""Placeholder for the image features; the first human turn of a conversation starts with it and a newline."""

SHORT_ANSWER_INSTRUCTION = "Answer the question using a single word or phrase."
MULTIPLE_CHOICE_INSTRUCTION = "Answer with the option's letter from the given choices directly."

WORD_PUNCTUATION = ".,?':()[]"
"""Characters that are words of their own (the brackets come from bounding boxes like "[0.00, 0.33, 0.50, 1.00]")."""

_ESCAPED_PUNCTUATION = re.escape(WORD_PUNCTUATION)
# A punctuation mark, a single digit, or a run of anything else that is not whitespace.
_WORD_PATTERN = re.compile(rf"[{_ESCAPED_PUNCTUATION}]|\d|[^\s\d{_ESCAPED_PUNCTUATION}]+")

_MAX_OPTIONS = 26


def option_letters(n: int) -> list[str]:
    """The letters naming n options: "A", "B", ...."""
    if not 0 <= n <= _MAX_OPTIONS:
        raise ValueError(f"{n} options requested, letters exist for 0..{_MAX_OPTIONS}")
    return [chr(ord("A") + index) for index in range(n)]


def format_question(question: str, options: Sequence[str] = ()) -> str:
    """The prompt for one question: short-answer without options, LLaVA-1.5's multiple-choice layout with them."""
    if not options:
        return f"{question}\n{SHORT_ANSWER_INSTRUCTION}"
    option_lines = [f"{letter}. {option}" for letter, option in zip(option_letters(len(options)), options)]
    return "\n".join([question, *option_lines, MULTIPLE_CHOICE_INSTRUCTION])


def parse_question(prompt: str) -> tuple[str, list[str]]:
    """Split a `format_question` prompt back into (question, options); a leading image-token line is dropped.

    The question itself must not span several lines that look like options; world questions are one line.
    """
    if prompt.startswith(IMAGE_TOKEN + "\n"):
        prompt = prompt[len(IMAGE_TOKEN) + 1 :]
    short_suffix = "\n" + SHORT_ANSWER_INSTRUCTION
    choice_suffix = "\n" + MULTIPLE_CHOICE_INSTRUCTION
    if prompt.endswith(short_suffix):
        return prompt[: -len(short_suffix)], []
    if not prompt.endswith(choice_suffix):
        raise ValueError(f"not a formatted question (it ends with neither instruction): {prompt!r}")
    lines = prompt[: -len(choice_suffix)].split("\n")
    # The options are the longest run of trailing lines lettered A., B., ... in order; the rest is the question.
    for num_options in range(min(len(lines) - 1, _MAX_OPTIONS), 0, -1):
        option_lines = lines[-num_options:]
        prefixes = [f"{letter}. " for letter in option_letters(num_options)]
        if all(line.startswith(prefix) for line, prefix in zip(option_lines, prefixes)):
            question = "\n".join(lines[:-num_options])
            return question, [line[len(prefix) :] for line, prefix in zip(option_lines, prefixes)]
    raise ValueError(f"multiple-choice prompt without lettered options: {prompt!r}")


def with_image_token(prompt: str) -> str:
    """The first human turn of a conversation: the image placeholder, a newline, then the prompt."""
    return f"{IMAGE_TOKEN}\n{prompt}"


def split_words(text: str) -> list[str]:
    """Words of `text` under the vocabulary's rule.

    Lowercased, split on whitespace; each of . , ? ' : ( ) [ ] is a word of its own and so is each digit, so
    numbers and coordinates need only ten digit words. "<image>" stays one word.
    """
    return _WORD_PATTERN.findall(text.lower())
