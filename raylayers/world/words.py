"""The words a world is made of, and the closed vocabulary they add up to.

Shapes, colours, sizes, cell names, the rendered words, and every fixed piece of text that captions and questions
are built from live here. Everything a caption, question, option or answer can say comes from these lists, so
`vocabulary()` (what the world's tokenizer is trained on) is built from them and changes only when they do.
"""

from __future__ import annotations

import re
from functools import lru_cache

from raylayers.prompts import (
    IMAGE_TOKEN,
    MULTIPLE_CHOICE_INSTRUCTION,
    SHORT_ANSWER_INSTRUCTION,
    option_letters,
    split_words,
)

# Cell names exist for these grids; WorldScale checks its grid against them. Every name is its row's word then its
# column's ("middle center", not "center"): reading a cell as a row and a column is then copying a word, which the
# world's small LM learns; with "center" and "top center" it stayed at the prior on relation questions (README,
# "An LM that reads").
CELL_NAMES = {
    2: (("top left", "top right"), ("bottom left", "bottom right")),
    3: (
        ("top left", "top center", "top right"),
        ("middle left", "middle center", "middle right"),
        ("bottom left", "bottom center", "bottom right"),
    ),
}

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 45, 45),
    "green": (45, 190, 65),
    "blue": (55, 95, 235),
    "yellow": (235, 215, 45),
    "purple": (155, 65, 210),
    "orange": (245, 140, 30),
}
"""Each colour's base RGB; objects jitter it a little (see scene.py)."""
SIZES = ("small", "large")
TEXT_WORDS = (
    "cat", "dog", "sun", "box", "cup", "hat", "map", "pen", "key", "bus", "car", "fish", "bird", "tree",
    "moon", "book", "door", "lamp", "ship", "frog", "cake", "milk", "rain", "snow", "wind", "fire", "leaf",
    "bell", "boat", "coin", "drum", "egg", "fox", "kite", "nut", "owl", "pig", "rug", "web", "jam",
)  # fmt: skip
"""The words an image may show; its other texts are numbers of one to three digits."""
MAX_OPTIONS = 4
"""Most options a multiple-choice question offers; their letters are words of the vocabulary."""

CAPTION_REQUESTS = (
    "Describe the image briefly.",
    "What is in this image?",
    "Give a short description of the picture.",
    "List the objects you can see in the image.",
    "Write a caption for this image.",
)
CAPTION_ONE = "There is 1 object: {objects}."
CAPTION_MANY = "There are {count} objects: {objects}."
CAPTION_OBJECT = "a {size} {colour} {shape} in the {cell}"
CAPTION_TEXT = "The text reads {text}."
CAPTION_LAST_SEPARATOR = " and "
ATTRIBUTE_COLOUR = "What colour is the {shape}?"
ATTRIBUTE_SHAPE = "What shape is the {colour} object?"
ATTRIBUTE_SIZE = "What size is the {colour} {shape}?"
OCR_QUESTION = "What does the text in the image say?"
COUNT_QUESTION = "How many {things} are there?"
COUNT_COLOUR_THINGS = "{colour} objects"
POSITION_QUESTION = "Where is the {thing}?"
RELATION_HORIZONTAL = "Is the {first} to the left of or to the right of the {second}?"
RELATION_VERTICAL = "Is the {first} above or below the {second}?"
LOCALIZE_QUESTION = "Which box contains the {thing}?"
POPE_QUESTION = "Is there {thing} in the image?"
TEMPLATES = (
    CAPTION_ONE, CAPTION_MANY, CAPTION_OBJECT, CAPTION_TEXT, CAPTION_LAST_SEPARATOR,
    ATTRIBUTE_COLOUR, ATTRIBUTE_SHAPE, ATTRIBUTE_SIZE, OCR_QUESTION, COUNT_QUESTION, COUNT_COLOUR_THINGS,
    POSITION_QUESTION, RELATION_HORIZONTAL, RELATION_VERTICAL, LOCALIZE_QUESTION, POPE_QUESTION,
)  # fmt: skip
"""Every piece of fixed text captions and questions are built from; vocabulary() reads its words from here."""
RELATION_OPTIONS = {"horizontal": ("left", "right"), "vertical": ("above", "below")}
"""The two options of a relation question, first one meaning "first object is left of / above the second"."""
POPE_ANSWERS = ("yes", "no")
ARTICLES = ("a", "an")


def cell_box(row: int, col: int, grid: int) -> str:
    """A cell's normalised box "[x1, y1, x2, y2]", the answer format of the localize task."""
    return f"[{col / grid:.2f}, {row / grid:.2f}, {(col + 1) / grid:.2f}, {(row + 1) / grid:.2f}]"


def vocabulary() -> list[str]:
    """Every word that can appear in any caption, question, prompt, option, answer or rendered text, sorted.

    Words follow `raylayers.prompts.split_words` (lowercase; . , ? ' : ( ) [ ] and each digit are words of their
    own); "<image>" is included. Independent of seed and scale.
    """
    return list(_vocabulary())


@lru_cache(maxsize=1)
def _vocabulary() -> tuple[str, ...]:
    literals = [IMAGE_TOKEN, SHORT_ANSWER_INSTRUCTION, MULTIPLE_CHOICE_INSTRUCTION, *CAPTION_REQUESTS]
    literals += [re.sub(r"\{\w+\}", " ", template) for template in TEMPLATES]
    literals += [*SHAPES, *(plural(shape) for shape in SHAPES), *COLOURS, *SIZES, *TEXT_WORDS]
    literals += [*POPE_ANSWERS, *ARTICLES]
    literals += [option for options in RELATION_OPTIONS.values() for option in options]
    literals += [*option_letters(MAX_OPTIONS), "0123456789"]
    for grid, names in CELL_NAMES.items():
        literals += [name for row in names for name in row]
        literals += [cell_box(row, col, grid) for row in range(grid) for col in range(grid)]
    return tuple(sorted({word for literal in literals for word in split_words(literal)}))


def plural(shape: str) -> str:
    """How count questions name several of a shape ("circle": "circles"); vocabulary() holds every plural."""
    return shape + "s"


def with_article(phrase: str) -> str:
    """The phrase behind "a" or "an" (one of ARTICLES), chosen by its first letter."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase
