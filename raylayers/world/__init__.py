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

The modules, each importing only those listed before it:
    words.py      shapes, colours, cell names, caption and question templates; vocabulary()
    scale.py      WorldScale, the SCALES presets, WorldError
    scene.py      Scene and sample_scene: what an image shows, drawn from a random generator
    render.py     render_scene: a scene's pixels
    questions.py  the tasks and their categories, captions, a question maker per task
    build.py      records, benchmark rows and build_world, which plans, renders and writes a world
Other modules import from here; the names below are the package's public surface.
"""

from raylayers.world.build import build_world
from raylayers.world.questions import (
    POPE_SPLITS,
    QUESTION_MAKERS,
    TASK_CATEGORIES,
    TASK_META,
    TASKS,
    ObjectStats,
    Question,
    caption,
    object_stats,
    pope_negative,
)
from raylayers.world.render import render_scene
from raylayers.world.scale import SCALES, WorldError, WorldScale
from raylayers.world.scene import Scene, SceneObject, sample_scene
from raylayers.world.words import CAPTION_REQUESTS, CELL_NAMES, COLOURS, SHAPES, SIZES, cell_box, vocabulary

__all__ = [
    "CAPTION_REQUESTS",
    "CELL_NAMES",
    "COLOURS",
    "POPE_SPLITS",
    "QUESTION_MAKERS",
    "SCALES",
    "SHAPES",
    "SIZES",
    "TASKS",
    "TASK_CATEGORIES",
    "TASK_META",
    "ObjectStats",
    "Question",
    "Scene",
    "SceneObject",
    "WorldError",
    "WorldScale",
    "build_world",
    "caption",
    "cell_box",
    "object_stats",
    "pope_negative",
    "render_scene",
    "sample_scene",
    "vocabulary",
]
