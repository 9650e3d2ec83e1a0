"""Scenes: everything an image shows, decided before drawing so rendering is a pure function of the scene.

`sample_scene` draws one from a random generator: 1..max_objects coloured shapes, each in a cell of its own, maybe a
word or number in one more cell, and a dark cluttered background. Questions are answered from the same scene, so
an answer never depends on reading pixels back. `pick` and `pick_weighted` are how the world draws from a list;
questions and records draw with them too, and a change in how they consume a generator changes every world.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from raylayers.world.scale import WorldScale
from raylayers.world.words import CELL_NAMES, COLOURS, SHAPES, SIZES, TEXT_WORDS

# Skewed on purpose: POPE's "popular" split needs some colour-shape objects to be commoner than others.
SHAPE_WEIGHTS = (0.34, 0.26, 0.22, 0.18)
COLOUR_WEIGHTS = (0.24, 0.20, 0.17, 0.15, 0.13, 0.11)
SIZE_RADIUS = {"small": 0.22, "large": 0.38}
"""Shape radius as a fraction of the cell side."""
THEME_PROBABILITY = 0.35
"""Chance that an object takes its scene's theme colour (and, separately, theme shape): gives repeated shapes to
count and real co-occurrence statistics for POPE's adversarial split."""
TEXT_PROBABILITY = 0.5
COLOUR_JITTER = 20
"""Most an object's RGB channels stray from its colour's base value, so a colour is a range, not one exact RGB."""


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


def pick(rng: np.random.Generator, items):
    """One of `items`, uniformly (one integer draw from `rng`)."""
    return items[int(rng.integers(len(items)))]


def pick_weighted(rng: np.random.Generator, items, weights) -> str:
    """One of `items` with the given probabilities (one choice draw from `rng`)."""
    return items[int(rng.choice(len(items), p=weights))]


def sample_scene(rng: np.random.Generator, scale: WorldScale, with_text: bool | None = None) -> Scene:
    """Draw a scene; `with_text` forces text on or off (None: on with TEXT_PROBABILITY)."""
    grid = scale.grid
    colour_names = tuple(COLOURS)
    num_objects = int(rng.integers(1, scale.max_objects + 1))
    if with_text is None:
        with_text = bool(rng.random() < TEXT_PROBABILITY)
    cells = [int(cell) for cell in rng.permutation(grid * grid)[: num_objects + int(with_text)]]
    theme_colour = pick_weighted(rng, colour_names, COLOUR_WEIGHTS)
    theme_shape = pick_weighted(rng, SHAPES, SHAPE_WEIGHTS)
    objects = []
    for cell in cells[:num_objects]:
        colour = theme_colour if rng.random() < THEME_PROBABILITY else pick_weighted(rng, colour_names, COLOUR_WEIGHTS)
        shape = theme_shape if rng.random() < THEME_PROBABILITY else pick_weighted(rng, SHAPES, SHAPE_WEIGHTS)
        size = pick(rng, SIZES)
        jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
        rgb = tuple(int(np.clip(channel + offset, 0, 255)) for channel, offset in zip(COLOURS[colour], jitter))
        max_shift = 0.5 - SIZE_RADIUS[size] - 0.05
        shift = tuple(float(value) for value in rng.uniform(-max_shift, max_shift, size=2))
        objects.append(SceneObject(shape, colour, size, cell // grid, cell % grid, rgb, shift))
    objects.sort(key=lambda obj: (obj.row, obj.col))

    text = text_cell = None
    if with_text:
        if rng.random() < 0.5:
            text = pick(rng, TEXT_WORDS)
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
