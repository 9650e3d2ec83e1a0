"""Questions: the benchmark tasks, the caption of a scene, and a question maker per task.

Each of the seven tasks belongs to one of the four categories of the vision-encoder layer study (general, ocr,
vision_centric, hallucination). A maker takes a scene, a random generator and the training images' `ObjectStats`,
and returns a `Question` whose answer is read off the scene, or None when the scene cannot support that task (no
uniquely named object, no text, ...); callers then draw another scene or another task. POPE's harder negatives
need the statistics: "popular" absent kinds are the common ones, "adversarial" ones co-occur with what is present.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

from raylayers.prompts import option_letters
from raylayers.world.scene import Scene, pick
from raylayers.world.words import (
    ATTRIBUTE_COLOUR,
    ATTRIBUTE_SHAPE,
    ATTRIBUTE_SIZE,
    CAPTION_LAST_SEPARATOR,
    CAPTION_MANY,
    CAPTION_OBJECT,
    CAPTION_ONE,
    CAPTION_TEXT,
    COLOURS,
    COUNT_COLOUR_THINGS,
    COUNT_QUESTION,
    LOCALIZE_QUESTION,
    MAX_OPTIONS,
    OCR_QUESTION,
    POPE_ANSWERS,
    POPE_QUESTION,
    POSITION_QUESTION,
    RELATION_HORIZONTAL,
    RELATION_OPTIONS,
    RELATION_VERTICAL,
    SHAPES,
    SIZES,
    cell_box,
    plural,
    with_article,
)

TASK_CATEGORIES = {
    "attributes": "general",
    "ocr": "ocr",
    "count": "vision_centric",
    "position": "vision_centric",
    "relation": "vision_centric",
    "localize": "vision_centric",
    "pope": "hallucination",
}
"""Each task's category; its order is the order of TASKS, of the benchmark folders and of world.json's tasks."""
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
    """One question about a scene, as a benchmark row and a stage-2 turn both state it."""

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
    """The statistics of `scenes`; a world computes them over its training images only."""
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
    asked = pick(rng, sorted(askable))
    obj = pick(rng, askable[asked])
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
        "shape": [(plural(shape), shapes[shape]) for shape in SHAPES],
        "colour": [(COUNT_COLOUR_THINGS.format(colour=colour), colours[colour]) for colour in COLOURS],
        "both": [(f"{colour} {plural(shape)}", kinds[colour, shape]) for colour in COLOURS for shape in SHAPES],
    }
    if desired is not None:
        queries = {kind: [q for q in listed if q[1] == desired] for kind, listed in queries.items()}
    elif rng.random() < 0.7:  # mostly ask about what is there, so answers are not almost always 0
        queries = {kind: [q for q in listed if q[1] > 0] for kind, listed in queries.items()}
    queries = {kind: listed for kind, listed in queries.items() if listed}
    if not queries:
        return None
    things, count = pick(rng, queries[pick(rng, sorted(queries))])
    return Question("count", COUNT_QUESTION.format(things=things), str(count))


def position_question(scene: Scene, rng, stats: ObjectStats) -> Question | None:
    if not (unique := scene.unique_objects()):
        return None
    obj = pick(rng, unique)
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
    first, second, axis = pick(rng, pairs)
    template = RELATION_HORIZONTAL if axis == "horizontal" else RELATION_VERTICAL
    before = first.col < second.col if axis == "horizontal" else first.row < second.row
    correct, other = RELATION_OPTIONS[axis] if before else reversed(RELATION_OPTIONS[axis])
    question = template.format(first=first.name, second=second.name)
    return _multiple_choice("relation", question, correct, [other], rng)


def localize_question(scene: Scene, rng, stats: ObjectStats) -> Question | None:
    if not (unique := scene.unique_objects()):
        return None
    obj = pick(rng, unique)
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
        return pick(rng, sorted(absent))
    if split == "adversarial":

        def adversarial_score(kind):
            together = sum(stats.cooccurrence.get((kind, other), 0) for other in present)
            shares = sum(kind[0] == colour or kind[1] == shape for colour, shape in present)
            return together, shares

        absent = sorted(absent, key=adversarial_score, reverse=True)  # stable: popularity breaks ties
    return pick(rng, absent[:POPE_TOP_K])


def pope_question(scene: Scene, rng, stats: ObjectStats, split: str | None = None, answer: str | None = None):
    """Is there a <colour> <shape>? Present kinds answer yes; negatives follow `split` (None: any split)."""
    answer = answer or pick(rng, POPE_ANSWERS)
    if answer == "yes":
        colour, shape = pick(rng, sorted(scene.combos()))
    else:
        colour, shape = pope_negative(scene, rng, stats, split or pick(rng, POPE_SPLITS))
    return Question("pope", POPE_QUESTION.format(thing=with_article(f"{colour} {shape}")), answer)


QUESTION_MAKERS: dict[str, Callable[..., Question | None]] = {
    "attributes": attributes_question,
    "ocr": ocr_question,
    "count": count_question,
    "position": position_question,
    "relation": relation_question,
    "localize": localize_question,
    "pope": pope_question,
}

