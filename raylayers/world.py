"""The offline world: a deterministic procedural image + question dataset.

It stands in for LLaVA's caption and instruction data and for its benchmarks, so a small CLIP and a small LLaVA can
be trained and evaluated with nothing downloaded. An image is a dark, lightly cluttered background with 1..N
coloured shapes on a G x G grid of cells and, in about half the images, a rendered word or number in a cell of its
own. Every question is answered from the scene that drew the image, and every benchmark task falls into one of the
four categories of the vision-encoder layer study: general, ocr, vision_centric, hallucination.

`build_world(out_dir, seed, scale)` writes:
    images/                          train_*.png and val_*.png
    stage1.json, stage1_val.json     one caption per image (LLaVA conversation format)
    stage2.json, stage2_val.json     several QA turns per image, drawn from every benchmark template
    bench/<task>/                    questions.parquet, meta.json and images/ (self-contained)
    scenes.json                      ground truth per image path (objects, cells, text), for tests and debugging
    world.json                       seed, scale, sizes, counts, tasks and vocabulary size
The same seed and scale give byte-identical files. Every image draws its scene from its own random stream, keyed
by (seed, split or task, index), so train, val and benchmark scenes come from disjoint streams.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from .errors import UserError
from .prompts import (
    IMAGE_TOKEN,
    MULTIPLE_CHOICE_INSTRUCTION,
    SHORT_ANSWER_INSTRUCTION,
    format_question,
    option_letters,
    split_words,
    with_image_token,
)


class WorldError(UserError, ValueError):
    """A bad argument to `build_world` (a ValueError for library callers, a one-line UserError for the CLI)."""


# Cell names exist for these grids; WorldScale checks its grid against them.
CELL_NAMES = {
    2: (("top left", "top right"), ("bottom left", "bottom right")),
    3: (
        ("top left", "top center", "top right"),
        ("middle left", "center", "middle right"),
        ("bottom left", "bottom center", "bottom right"),
    ),
}


@dataclass(frozen=True)
class WorldScale:
    """How big a world is; `SCALES` names the presets."""

    image_size: int
    """Side of the square images, in pixels."""
    grid: int
    """Objects sit on a grid x grid layout of cells (2 or 3: cell names like "top left" exist for those)."""
    num_train_images: int
    """Images behind stage1.json and stage2.json (the same pool for both stages, as in LLaVA)."""
    num_val_images: int
    """Held-out images behind stage1_val.json and stage2_val.json."""
    num_bench_questions: int
    """Questions per benchmark task (POPE rounds down to a multiple of 6 so each of its 3 splits is balanced)."""
    max_objects: int
    """Most shapes in one image; every image has at least one."""
    questions_per_image: int
    """Question/answer turn pairs in one stage-2 record."""

    def __post_init__(self) -> None:
        if self.grid not in CELL_NAMES:
            raise WorldError(f"grid {self.grid} has no cell names (valid: {', '.join(map(str, CELL_NAMES))})")
        if not 1 <= self.max_objects <= self.grid**2 - 1:  # the text needs a free cell
            raise WorldError(f"max_objects {self.max_objects} must be in 1..{self.grid**2 - 1} for grid {self.grid}")
        if self.image_size < 8 * self.grid:
            raise WorldError(f"image_size {self.image_size} is too small for grid {self.grid} (min {8 * self.grid})")
        if self.num_bench_questions < 6:
            raise WorldError(f"num_bench_questions {self.num_bench_questions} < 6 leaves POPE's splits empty")
        if min(self.num_train_images, self.num_val_images, self.questions_per_image) < 1:
            raise WorldError("num_train_images, num_val_images and questions_per_image must be at least 1")


SCALES: dict[str, WorldScale] = {
    "tiny": WorldScale(image_size=32, grid=2, num_train_images=48, num_val_images=16, num_bench_questions=12,
                       max_objects=3, questions_per_image=3),
    "demo": WorldScale(image_size=64, grid=3, num_train_images=3000, num_val_images=300, num_bench_questions=200,
                       max_objects=4, questions_per_image=4),
    "full": WorldScale(image_size=96, grid=3, num_train_images=30_000, num_val_images=1000,
                       num_bench_questions=1000, max_objects=5, questions_per_image=6),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# What a world is made of. Everything a question can say comes from these lists, so vocabulary() is built from them.

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 45, 45),
    "green": (45, 190, 65),
    "blue": (55, 95, 235),
    "yellow": (235, 215, 45),
    "purple": (155, 65, 210),
    "orange": (245, 140, 30),
}
# Skewed on purpose: POPE's "popular" split needs some colour-shape objects to be commoner than others.
SHAPE_WEIGHTS = (0.34, 0.26, 0.22, 0.18)
COLOUR_WEIGHTS = (0.24, 0.20, 0.17, 0.15, 0.13, 0.11)
SIZES = ("small", "large")
SIZE_RADIUS = {"small": 0.22, "large": 0.38}
"""Shape radius as a fraction of the cell side."""
THEME_PROBABILITY = 0.35
"""Chance that an object takes its scene's theme colour (and, separately, theme shape): gives repeated shapes to
count and real co-occurrence statistics for POPE's adversarial split."""
TEXT_PROBABILITY = 0.5
COLOUR_JITTER = 20
TEXT_WORDS = (
    "cat", "dog", "sun", "box", "cup", "hat", "map", "pen", "key", "bus", "car", "fish", "bird", "tree",
    "moon", "book", "door", "lamp", "ship", "frog", "cake", "milk", "rain", "snow", "wind", "fire", "leaf",
    "bell", "boat", "coin", "drum", "egg", "fox", "kite", "nut", "owl", "pig", "rug", "web", "jam",
)  # fmt: skip
TASK_CATEGORIES = {
    "attributes": "general",
    "ocr": "ocr",
    "count": "vision_centric",
    "position": "vision_centric",
    "relation": "vision_centric",
    "localize": "vision_centric",
    "pope": "hallucination",
}
TASKS = tuple(TASK_CATEGORIES)
TASK_META = {  # task: (answer_type, metric, description)
    "attributes": ("multiple_choice", "mc_accuracy", "Colour, shape or size of a uniquely identified object."),
    "ocr": ("short", "ocr_contains", "Read the word or number rendered in the image."),
    "count": ("short", "exact_match", "Count the objects of a shape, a colour or both (the answer may be 0)."),
    "position": ("multiple_choice", "mc_accuracy", "Name the grid cell an object sits in."),
    "relation": ("multiple_choice", "mc_accuracy", "Left/right or above/below between two objects."),
    "localize": ("multiple_choice", "mc_accuracy", "Pick the normalised box (x1, y1, x2, y2) holding an object."),
    "pope": ("yes_no", "pope", "Is an object present? Balanced yes/no in random, popular, adversarial splits."),
}
POPE_SPLITS = ("random", "popular", "adversarial")
POPE_TOP_K = 3
"""Popular and adversarial negatives are drawn from the top this-many absent kinds."""
MAX_OPTIONS = 4

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
    literals += [*SHAPES, *(_plural(shape) for shape in SHAPES), *COLOURS, *SIZES, *TEXT_WORDS]
    literals += [*POPE_ANSWERS, *ARTICLES]
    literals += [option for options in RELATION_OPTIONS.values() for option in options]
    literals += [*option_letters(MAX_OPTIONS), "0123456789"]
    for grid, names in CELL_NAMES.items():
        literals += [name for row in names for name in row]
        literals += [cell_box(row, col, grid) for row in range(grid) for col in range(grid)]
    return tuple(sorted({word for literal in literals for word in split_words(literal)}))


def _plural(shape: str) -> str:
    return shape + "s"


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


# ---------------------------------------------------------------------------------------------------------------
# Scenes: everything an image shows, decided before drawing so rendering is a pure function of the scene.


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    row: int
    col: int
    rgb: tuple[int, int, int]
    """The colour after per-object jitter."""
    shift: tuple[float, float]
    """Centre offset from the cell centre, as a fraction of the cell side (kept inside the cell)."""

    @property
    def name(self) -> str:
        """How questions refer to it: "red circle"."""
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    grid: int
    background: tuple[int, int, int]
    clutter_lines: tuple[tuple[float, float, float, float], ...]
    """Thin grey lines (x1, y1, x2, y2) as fractions of the image side: texture that is never a countable shape."""
    clutter_dots: tuple[tuple[float, float], ...]
    clutter_grey: int
    objects: tuple[SceneObject, ...]
    """In reading order (row, then column), each in its own cell."""
    text: str | None
    text_cell: tuple[int, int] | None
    text_rgb: tuple[int, int, int]

    def cell_name(self, row: int, col: int) -> str:
        return CELL_NAMES[self.grid][row][col]

    def all_cell_names(self) -> list[str]:
        return [name for row in CELL_NAMES[self.grid] for name in row]

    def unique_objects(self) -> list[SceneObject]:
        """Objects that "the <colour> <shape>" names unambiguously."""
        counts = Counter(obj.name for obj in self.objects)
        return [obj for obj in self.objects if counts[obj.name] == 1]

    def combos(self) -> set[tuple[str, str]]:
        """The (colour, shape) kinds present."""
        return {(obj.colour, obj.shape) for obj in self.objects}

    def summary(self) -> dict:
        """The ground truth written to scenes.json."""
        objects = [
            {"shape": o.shape, "colour": o.colour, "size": o.size, "row": o.row, "col": o.col,
             "cell": self.cell_name(o.row, o.col)}
            for o in self.objects
        ]  # fmt: skip
        text_cell = self.cell_name(*self.text_cell) if self.text_cell else None
        return {"objects": objects, "text": self.text, "text_cell": text_cell}


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _pick_weighted(rng: np.random.Generator, items, weights) -> str:
    return items[int(rng.choice(len(items), p=weights))]


def sample_scene(rng: np.random.Generator, scale: WorldScale, with_text: bool | None = None) -> Scene:
    """Draw a scene; `with_text` forces text on or off (None: on with TEXT_PROBABILITY)."""
    grid = scale.grid
    colour_names = tuple(COLOURS)
    num_objects = int(rng.integers(1, scale.max_objects + 1))
    if with_text is None:
        with_text = bool(rng.random() < TEXT_PROBABILITY)
    cells = [int(cell) for cell in rng.permutation(grid * grid)[: num_objects + int(with_text)]]
    theme_colour = _pick_weighted(rng, colour_names, COLOUR_WEIGHTS)
    theme_shape = _pick_weighted(rng, SHAPES, SHAPE_WEIGHTS)
    objects = []
    for cell in cells[:num_objects]:
        colour = theme_colour if rng.random() < THEME_PROBABILITY else _pick_weighted(rng, colour_names, COLOUR_WEIGHTS)
        shape = theme_shape if rng.random() < THEME_PROBABILITY else _pick_weighted(rng, SHAPES, SHAPE_WEIGHTS)
        size = _pick(rng, SIZES)
        jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
        rgb = tuple(int(np.clip(channel + offset, 0, 255)) for channel, offset in zip(COLOURS[colour], jitter))
        max_shift = 0.5 - SIZE_RADIUS[size] - 0.05
        shift = tuple(float(value) for value in rng.uniform(-max_shift, max_shift, size=2))
        objects.append(SceneObject(shape, colour, size, cell // grid, cell % grid, rgb, shift))
    objects.sort(key=lambda obj: (obj.row, obj.col))

    text = text_cell = None
    if with_text:
        if rng.random() < 0.5:
            text = _pick(rng, TEXT_WORDS)
        else:
            digits = int(rng.integers(1, 4))
            text = str(int(rng.integers(0 if digits == 1 else 10 ** (digits - 1), 10**digits)))
        text_cell = (cells[-1] // grid, cells[-1] % grid)
    text_grey = int(rng.integers(200, 256))
    return Scene(
        grid=grid,
        background=tuple(int(value) for value in rng.integers(0, 50, size=3)),
        clutter_lines=tuple(tuple(float(v) for v in rng.random(4)) for _ in range(int(rng.integers(1, 4)))),
        clutter_dots=tuple(tuple(float(v) for v in rng.random(2)) for _ in range(int(rng.integers(2, 8)))),
        clutter_grey=int(rng.integers(80, 120)),
        objects=tuple(objects),
        text=text,
        text_cell=text_cell,
        text_rgb=(text_grey, text_grey, text_grey - int(rng.integers(0, 31))),  # white to a faintly warm white
    )


# ---------------------------------------------------------------------------------------------------------------
# Rendering

SUPERSAMPLE = 2
"""Draw at twice the size and box-filter down: smooth edges keep small diamonds apart from small squares."""


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=None)
def _fitted_font(text: str, cell_px: int) -> ImageFont.FreeTypeFont:
    """The largest font (up to ~60% of the cell) whose rendering of `text` fits the cell width."""
    size = max(6, int(cell_px * 0.6))
    while size > 6:
        left, _, right, _ = _font(size).getbbox(text)
        if right - left <= cell_px * 0.92:
            break
        size -= 1
    return _font(size)


def render_scene(scene: Scene, image_size: int) -> Image.Image:
    canvas_size = image_size * SUPERSAMPLE
    cell = canvas_size / scene.grid
    image = Image.new("RGB", (canvas_size, canvas_size), scene.background)
    draw = ImageDraw.Draw(image)
    grey = (scene.clutter_grey,) * 3
    for line in scene.clutter_lines:
        draw.line([value * canvas_size for value in line], fill=grey, width=SUPERSAMPLE)
    for x, y in scene.clutter_dots:
        draw.rectangle([x * canvas_size, y * canvas_size, x * canvas_size + SUPERSAMPLE - 1,
                        y * canvas_size + SUPERSAMPLE - 1], fill=grey)  # fmt: skip

    for obj in scene.objects:
        cx = (obj.col + 0.5 + obj.shift[0]) * cell
        cy = (obj.row + 0.5 + obj.shift[1]) * cell
        r = SIZE_RADIUS[obj.size] * cell
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=obj.rgb)
        elif obj.shape == "square":
            half = r * 0.85  # a square of the full radius looks much bigger than a circle of it
            draw.rectangle([cx - half, cy - half, cx + half, cy + half], fill=obj.rgb)
        elif obj.shape == "triangle":
            draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=obj.rgb)
        else:  # diamond
            draw.polygon([(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)], fill=obj.rgb)

    if scene.text is not None:
        row, col = scene.text_cell
        font = _fitted_font(scene.text, int(cell))
        draw.text(((col + 0.5) * cell, (row + 0.5) * cell), scene.text, fill=scene.text_rgb, font=font, anchor="mm")
    return image.reduce(SUPERSAMPLE)


# ---------------------------------------------------------------------------------------------------------------
# Captions and questions


def caption(scene: Scene) -> str:
    """Every object (size, colour, shape, cell) in reading order, then the text if any."""
    parts = [
        CAPTION_OBJECT.format(size=o.size, colour=o.colour, shape=o.shape, cell=scene.cell_name(o.row, o.col))
        for o in scene.objects
    ]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + CAPTION_LAST_SEPARATOR + parts[-1]
    if len(parts) == 1:
        text = CAPTION_ONE.format(objects=listed)
    else:
        text = CAPTION_MANY.format(count=len(parts), objects=listed)
    if scene.text is not None:
        text += " " + CAPTION_TEXT.format(text=scene.text)
    return text


@dataclass(frozen=True)
class Question:
    task: str
    question: str
    """The bare question, without options or instructions."""
    answer: str
    """The option letter for multiple choice, else the answer text."""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObjectStats:
    """How the (colour, shape) kinds occur in the training images; POPE's harder negatives come from here."""

    popularity: tuple[tuple[str, str], ...]
    """Every kind, most frequent first (ties by name)."""
    cooccurrence: dict[tuple[tuple[str, str], tuple[str, str]], int]
    """Images that contain both kinds (keys in both orders)."""


def object_stats(scenes: list[Scene]) -> ObjectStats:
    frequency = Counter((o.colour, o.shape) for scene in scenes for o in scene.objects)
    every_kind = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    popularity = tuple(sorted(every_kind, key=lambda kind: (-frequency[kind], kind)))
    cooccurrence = Counter()
    for scene in scenes:
        kinds = sorted(scene.combos())
        cooccurrence.update((a, b) for a in kinds for b in kinds if a != b)
    return ObjectStats(popularity, dict(cooccurrence))


def _multiple_choice(task: str, question: str, correct: str, distractors: list[str], rng) -> Question:
    """Shuffle the correct option in among the distractors; the answer is its letter."""
    options = [correct, *distractors]
    options = [options[int(index)] for index in rng.permutation(len(options))]
    return Question(task, question, option_letters(len(options))[options.index(correct)], tuple(options))


def _sample_without(rng, items, exclude, count: int) -> list[str]:
    others = [item for item in items if item != exclude]
    return [others[int(index)] for index in rng.permutation(len(others))[:count]]


def attributes_question(scene: Scene, rng, stats: ObjectStats) -> Question | None:
    """Colour of the only <shape>, shape of the only <colour> object, or size of the only <colour> <shape>."""
    shape_counts = Counter(o.shape for o in scene.objects)
    colour_counts = Counter(o.colour for o in scene.objects)
    askable = {
        "colour": [o for o in scene.objects if shape_counts[o.shape] == 1],
        "shape": [o for o in scene.objects if colour_counts[o.colour] == 1],
        "size": scene.unique_objects(),
    }
    askable = {asked: objects for asked, objects in askable.items() if objects}
    if not askable:
        return None
    asked = _pick(rng, sorted(askable))
    obj = _pick(rng, askable[asked])
    if asked == "colour":
        question, correct, choices = ATTRIBUTE_COLOUR.format(shape=obj.shape), obj.colour, list(COLOURS)
    elif asked == "shape":
        question, correct, choices = ATTRIBUTE_SHAPE.format(colour=obj.colour), obj.shape, SHAPES
    else:
        question, correct, choices = ATTRIBUTE_SIZE.format(colour=obj.colour, shape=obj.shape), obj.size, SIZES
    distractors = _sample_without(rng, choices, correct, MAX_OPTIONS - 1)
    return _multiple_choice("attributes", question, correct, distractors, rng)


def ocr_question(scene: Scene, rng, stats: ObjectStats) -> Question | None:
    return None if scene.text is None else Question("ocr", OCR_QUESTION, scene.text)


def count_question(scene: Scene, rng, stats: ObjectStats, desired: int | None = None) -> Question | None:
    """How many of a shape, a colour or a colour-shape; `desired` asks for a question with that answer."""
    shapes = Counter(o.shape for o in scene.objects)
    colours = Counter(o.colour for o in scene.objects)
    kinds = Counter((o.colour, o.shape) for o in scene.objects)
    queries = {  # kind of query: [(things, count)]
        "shape": [(_plural(shape), shapes[shape]) for shape in SHAPES],
        "colour": [(COUNT_COLOUR_THINGS.format(colour=colour), colours[colour]) for colour in COLOURS],
        "both": [(f"{colour} {_plural(shape)}", kinds[colour, shape]) for colour in COLOURS for shape in SHAPES],
    }
    if desired is not None:
        queries = {kind: [q for q in listed if q[1] == desired] for kind, listed in queries.items()}
    elif rng.random() < 0.7:  # mostly ask about what is there, so answers are not almost always 0
        queries = {kind: [q for q in listed if q[1] > 0] for kind, listed in queries.items()}
    queries = {kind: listed for kind, listed in queries.items() if listed}
    if not queries:
        return None
    things, count = _pick(rng, queries[_pick(rng, sorted(queries))])
    return Question("count", COUNT_QUESTION.format(things=things), str(count))


def position_question(scene: Scene, rng, stats: ObjectStats) -> Question | None:
    if not (unique := scene.unique_objects()):
        return None
    obj = _pick(rng, unique)
    correct = scene.cell_name(obj.row, obj.col)
    distractors = _sample_without(rng, scene.all_cell_names(), correct, MAX_OPTIONS - 1)
    return _multiple_choice("position", POSITION_QUESTION.format(thing=obj.name), correct, distractors, rng)


def relation_question(scene: Scene, rng, stats: ObjectStats) -> Question | None:
    """Left/right between objects in different columns, above/below between objects in different rows."""
    unique = scene.unique_objects()
    pairs = [(a, b, "horizontal") for a in unique for b in unique if a.col != b.col]
    pairs += [(a, b, "vertical") for a in unique for b in unique if a.row != b.row]
    if not pairs:
        return None
    first, second, axis = _pick(rng, pairs)
    template = RELATION_HORIZONTAL if axis == "horizontal" else RELATION_VERTICAL
    before = first.col < second.col if axis == "horizontal" else first.row < second.row
    correct, other = RELATION_OPTIONS[axis] if before else reversed(RELATION_OPTIONS[axis])
    question = template.format(first=first.name, second=second.name)
    return _multiple_choice("relation", question, correct, [other], rng)


def localize_question(scene: Scene, rng, stats: ObjectStats) -> Question | None:
    if not (unique := scene.unique_objects()):
        return None
    obj = _pick(rng, unique)
    boxes = [cell_box(row, col, scene.grid) for row in range(scene.grid) for col in range(scene.grid)]
    correct = cell_box(obj.row, obj.col, scene.grid)
    distractors = _sample_without(rng, boxes, correct, MAX_OPTIONS - 1)
    return _multiple_choice("localize", LOCALIZE_QUESTION.format(thing=obj.name), correct, distractors, rng)


def pope_negative(scene: Scene, rng, stats: ObjectStats, split: str) -> tuple[str, str]:
    """An absent (colour, shape) for a POPE split: any at random; one of the most frequent in the training
    images; or one of those co-occurring most with what is present (ties: sharing a colour or shape with a
    present object, then popularity). Like POPE's top-k sampling, the last two pick among the top few."""
    present = scene.combos()
    absent = [kind for kind in stats.popularity if kind not in present]  # most popular first
    if split == "random":
        return _pick(rng, sorted(absent))
    if split == "adversarial":

        def adversarial_score(kind):
            together = sum(stats.cooccurrence.get((kind, other), 0) for other in present)
            shares = sum(kind[0] == colour or kind[1] == shape for colour, shape in present)
            return together, shares

        absent = sorted(absent, key=adversarial_score, reverse=True)  # stable: popularity breaks ties
    return _pick(rng, absent[:POPE_TOP_K])


def pope_question(scene: Scene, rng, stats: ObjectStats, split: str | None = None, answer: str | None = None):
    """Is there a <colour> <shape>? Present kinds answer yes; negatives follow `split` (None: any split)."""
    answer = answer or _pick(rng, POPE_ANSWERS)
    if answer == "yes":
        colour, shape = _pick(rng, sorted(scene.combos()))
    else:
        colour, shape = pope_negative(scene, rng, stats, split or _pick(rng, POPE_SPLITS))
    return Question("pope", POPE_QUESTION.format(thing=_with_article(f"{colour} {shape}")), answer)


QUESTION_MAKERS: dict[str, Callable[..., Question | None]] = {
    "attributes": attributes_question,
    "ocr": ocr_question,
    "count": count_question,
    "position": position_question,
    "relation": relation_question,
    "localize": localize_question,
    "pope": pope_question,
}


# ---------------------------------------------------------------------------------------------------------------
# Records

SCENE_PURPOSE, QUESTION_PURPOSE = 0, 1
STREAMS = ("train", "val", *TASKS)
MAX_SCENE_ATTEMPTS = 10_000


def stream_rng(seed: int, stream: str, index: int, purpose: int) -> np.random.Generator:
    """An independent generator per (seed, split or task, item, scene-or-question): the scene of an image does
    not depend on how many images or questions come before it."""
    return np.random.default_rng([seed, STREAMS.index(stream), index, purpose])


def caption_record(record_id: str, image: str, scene: Scene, rng) -> dict:
    request = _pick(rng, CAPTION_REQUESTS)
    return {
        "id": record_id,
        "image": image,
        "conversations": [
            {"from": "human", "value": with_image_token(request)},
            {"from": "gpt", "value": caption(scene)},
        ],
    }


def qa_record(record_id: str, image: str, scene: Scene, rng, stats: ObjectStats, turns: int) -> dict:
    """`turns` distinct questions from random tasks, each in the exact prompt format its benchmark uses."""
    conversations, asked = [], set()
    for _ in range(100 * turns):  # count and POPE fit any scene, so this always fills up well before the limit
        if len(asked) == turns:
            break
        question = QUESTION_MAKERS[_pick(rng, TASKS)](scene, rng, stats)
        if question is None or question.question in asked:
            continue
        asked.add(question.question)
        prompt = format_question(question.question, question.options)
        conversations += [
            {"from": "human", "value": with_image_token(prompt) if not conversations else prompt},
            {"from": "gpt", "value": question.answer},
        ]
    return {"id": record_id, "image": image, "conversations": conversations}


def _bench_row(question_id: str, image: str, question: Question) -> dict:
    return {
        "question_id": question_id,
        "image": image,
        "question": question.question,
        "answer": question.answer,
        "task": question.task,
        "category": TASK_CATEGORIES[question.task],
        "options": list(question.options),
    }


def bench_task(task: str, seed: int, scale: WorldScale, stats: ObjectStats) -> tuple[list[dict], list[tuple]]:
    """Rows of one benchmark and the (image path relative to its folder, scene) pairs to render."""
    if task == "pope":
        return _bench_pope(seed, scale, stats)
    rows, images = [], []
    for index in range(scale.num_bench_questions):
        scene_rng = stream_rng(seed, task, index, SCENE_PURPOSE)
        question_rng = stream_rng(seed, task, index, QUESTION_PURPOSE)
        maker = QUESTION_MAKERS[task]
        if task == "count":  # answers spread evenly over 0..max_objects instead of piling up at 1
            maker = partial(count_question, desired=int(question_rng.integers(0, scale.max_objects + 1)))
        for _ in range(MAX_SCENE_ATTEMPTS):  # redraw until the scene supports the question
            scene = sample_scene(scene_rng, scale, with_text=True if task == "ocr" else None)
            if (question := maker(scene, question_rng, stats)) is not None:
                break
        else:
            raise RuntimeError(f"no scene for a {task} question after {MAX_SCENE_ATTEMPTS} draws")
        image = f"images/{task}_{index:05d}.png"
        rows.append(_bench_row(f"{task}-{index:05d}", image, question))
        images.append((image, scene))
    return rows, images


def _bench_pope(seed: int, scale: WorldScale, stats: ObjectStats) -> tuple[list[dict], list[tuple]]:
    """Like POPE, every image appears in all three splits, once with a yes and once with a no question."""
    per_split = scale.num_bench_questions // 3 // 2 * 2
    rows_by_split = {split: [] for split in POPE_SPLITS}
    images = []
    for index in range(per_split // 2):
        scene = sample_scene(stream_rng(seed, "pope", index, SCENE_PURPOSE), scale)
        rng = stream_rng(seed, "pope", index, QUESTION_PURPOSE)
        image = f"images/pope_{index:05d}.png"
        images.append((image, scene))
        for split, rows in rows_by_split.items():
            for answer in POPE_ANSWERS:
                question = pope_question(scene, rng, stats, split, answer)
                row = _bench_row(f"pope-{split}-{len(rows):05d}", image, question)
                rows.append(row | {"split": split})
    return [row for rows in rows_by_split.values() for row in rows], images


BENCH_SCHEMA = pa.schema(
    [(name, pa.string()) for name in ("question_id", "image", "question", "answer", "task", "category")]
    + [("options", pa.list_(pa.string()))]
)


def write_bench(task_dir: Path, task: str, rows: list[dict]) -> None:
    """questions.parquet (POPE adds its `split` column) and meta.json; the images are rendered separately."""
    schema = BENCH_SCHEMA.append(pa.field("split", pa.string())) if task == "pope" else BENCH_SCHEMA
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), task_dir / "questions.parquet")
    answer_type, metric, description = TASK_META[task]
    meta = {"task": task, "category": TASK_CATEGORIES[task], "metric": metric, "answer_type": answer_type,
            "num_questions": len(rows), "description": description}  # fmt: skip
    _write_json(task_dir / "meta.json", meta, indent=2)


def _write_json(path: Path, value, indent: int | None = None) -> None:
    path.write_text(json.dumps(value, indent=indent), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# The world


def _clear_previous_world(out: Path) -> None:
    """Rebuilding over an earlier world removes its images and benchmarks first, so none of them is left stale.

    Only a folder that holds a world.json is cleared; anything else that is not empty is refused, not overwritten.
    """
    import shutil

    if not out.exists():
        return
    if not out.is_dir():
        raise WorldError(f"--out '{out}' exists and is not a folder")
    if (out / "world.json").is_file():
        for name in ("images", "bench"):
            shutil.rmtree(out / name, ignore_errors=True)
    elif any(out.iterdir()):
        raise WorldError(f"--out '{out}' is not empty and holds no world.json; give an empty or new folder")


def build_world(out_dir: str | Path, seed: int = 0, scale: str = "demo", progress: bool = True) -> dict:
    """Write a world (see the module docstring) and return a summary: counts per file and task, and paths."""
    if scale not in SCALES:
        raise WorldError(f"unknown scale {scale!r} (valid: {', '.join(SCALES)})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WorldError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    config = SCALES[scale]
    out = Path(out_dir)
    _clear_previous_world(out)

    # Plan everything first, render second, write the JSON last: a crash never leaves records without images.
    to_render: list[tuple[Path, Scene]] = []
    scene_truth: dict[str, dict] = {}
    splits = {
        split: [sample_scene(stream_rng(seed, split, index, SCENE_PURPOSE), config) for index in range(count)]
        for split, count in (("train", config.num_train_images), ("val", config.num_val_images))
    }
    stats = object_stats(splits["train"])  # POPE's popular/adversarial negatives: statistics of training data
    stage_files: dict[str, list[dict]] = {}  # file stem: records
    for split, scenes in splits.items():
        suffix = "" if split == "train" else "_val"
        stage1 = stage_files["stage1" + suffix] = []
        stage2 = stage_files["stage2" + suffix] = []
        for index, scene in enumerate(scenes):
            image, record_id = f"images/{split}_{index:06d}.png", f"{split}_{index:06d}"
            rng = stream_rng(seed, split, index, QUESTION_PURPOSE)
            stage1.append(caption_record(record_id, image, scene, rng))
            stage2.append(qa_record(record_id, image, scene, rng, stats, config.questions_per_image))
            to_render.append((out / image, scene))
            scene_truth[image] = scene.summary()

    bench_rows = {}
    for task in TASKS:
        bench_rows[task], images = bench_task(task, seed, config, stats)
        for image, scene in images:
            to_render.append((out / "bench" / task / image, scene))
            scene_truth[f"bench/{task}/{image}"] = scene.summary()

    for directory in {path.parent for path, _ in to_render}:
        directory.mkdir(parents=True, exist_ok=True)
    for path, scene in tqdm(to_render, desc="rendering world", unit="img", disable=not progress):
        render_scene(scene, config.image_size).save(path, format="PNG")

    for name, records in stage_files.items():
        _write_json(out / f"{name}.json", records)
    for task, rows in bench_rows.items():
        write_bench(out / "bench" / task, task, rows)
    _write_json(out / "scenes.json", scene_truth)

    counts = {
        **{name: len(records) for name, records in stage_files.items()},
        "train_images": config.num_train_images,
        "val_images": config.num_val_images,
        "bench_images": len(to_render) - config.num_train_images - config.num_val_images,
        "bench": {task: len(rows) for task, rows in bench_rows.items()},
    }
    world = {"seed": seed, "scale": scale, "image_size": config.image_size, "grid": config.grid, "counts": counts,
             "tasks": dict(TASK_CATEGORIES), "vocabulary_size": len(_vocabulary())}  # fmt: skip
    _write_json(out / "world.json", world, indent=2)
    paths = {
        **{name: str(out / f"{name}.json") for name in (*stage_files, "world", "scenes")},
        "images": str(out / "images"),
        "bench": {task: str(out / "bench" / task) for task in TASKS},
    }
    return {"out_dir": str(out), "seed": seed, "scale": scale, "counts": counts, "paths": paths}

