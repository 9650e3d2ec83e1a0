"""Building a world: its records and benchmark rows, planned from the seed, then rendered and written to a folder.

`build_world` runs three steps in order. It plans everything first (`plan_world`: every scene, stage-1 and stage-2
record and benchmark row, nothing written), renders the images second, and writes the JSON and parquet files last,
world.json at the very end, so a crash never leaves records that point at missing images. Every image draws its
scene and its questions from random streams of its own (`stream_rng`), so the same seed and scale give
byte-identical files, and train, val and benchmark scenes come from disjoint streams.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from raylayers.prompts import format_question, option_letters, with_image_token
from raylayers.world.questions import (
    POPE_SPLITS,
    QUESTION_MAKERS,
    TASK_CATEGORIES,
    TASK_META,
    TASKS,
    ObjectStats,
    Question,
    caption,
    count_question,
    object_stats,
    pope_question,
)
from raylayers.world.render import render_scene
from raylayers.world.scale import SCALES, WorldError, WorldScale
from raylayers.world.scene import Scene, pick, sample_scene
from raylayers.world.words import CAPTION_REQUESTS, POPE_ANSWERS, vocabulary

# ---------------------------------------------------------------------------------------------------------------
# Records and benchmark rows

SCENE_PURPOSE, QUESTION_PURPOSE = 0, 1
STREAMS = ("train", "val", *TASKS)
MAX_SCENE_ATTEMPTS = 10_000


def stream_rng(seed: int, stream: str, index: int, purpose: int) -> np.random.Generator:
    """An independent generator per (seed, split or task, item, scene-or-question): the scene of an image does
    not depend on how many images or questions come before it."""
    return np.random.default_rng([seed, STREAMS.index(stream), index, purpose])


def caption_record(record_id: str, image: str, scene: Scene, rng) -> dict:
    """A stage-1 record: one of the caption requests, answered with the scene's caption."""
    request = pick(rng, CAPTION_REQUESTS)
    return {
        "id": record_id,
        "image": image,
        "conversations": [
            {"from": "human", "value": with_image_token(request)},
            {"from": "gpt", "value": caption(scene)},
        ],
    }


def qa_record(record_id: str, image: str, scene: Scene, rng, stats: ObjectStats, turns: int,
              direct_fraction: float = 0.0) -> dict:
    """`turns` distinct questions from random tasks, each in the exact prompt format its benchmark uses; with
    `direct_fraction`, that share of multiple-choice questions is asked short-answer instead (answered with the
    option's text: one hop fewer, for teaching an LM to read; 0 draws nothing, so worlds stay as they were)."""
    conversations, asked = [], set()
    for _ in range(100 * turns):  # count and POPE fit any scene, so this always fills up well before the limit
        if len(asked) == turns:
            break
        question = QUESTION_MAKERS[pick(rng, TASKS)](scene, rng, stats)
        if question is None or question.question in asked:
            continue
        asked.add(question.question)
        prompt, answer = format_question(question.question, question.options), question.answer
        if question.options and direct_fraction and rng.random() < direct_fraction:
            prompt = format_question(question.question)
            answer = question.options[option_letters(len(question.options)).index(question.answer)]
        conversations += [
            {"from": "human", "value": with_image_token(prompt) if not conversations else prompt},
            {"from": "gpt", "value": answer},
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
    write_json(task_dir / "meta.json", meta, indent=2)


def write_json(path: Path, value, indent: int | None = None) -> None:
    """`value` as UTF-8 JSON; one line unless `indent` is given (the small meta files are indented to be read)."""
    path.write_text(json.dumps(value, indent=indent), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# The world


@dataclass
class WorldPlan:
    """Everything a world's files hold, decided before any file is written."""

    records: dict[str, list[dict]] = field(default_factory=dict)
    """File stem (stage1, stage2, stage1_val, stage2_val): its records."""
    bench_rows: dict[str, list[dict]] = field(default_factory=dict)
    """Task: the rows of its questions.parquet."""
    images: list[tuple[str, Scene]] = field(default_factory=list)
    """Every image as (path relative to the world folder, scene): train, val, then each task's benchmark images."""


def _split_image(split: str, index: int) -> str:
    return f"images/{split}_{index:06d}.png"


def split_records(seed: int, split: str, scenes: list[Scene], stats: ObjectStats,
                  turns: int) -> tuple[list[dict], list[dict]]:
    """The stage-1 (caption) and stage-2 (`turns` QA turns) records of a split, one of each per image."""
    stage1, stage2 = [], []
    for index, scene in enumerate(scenes):
        image, record_id = _split_image(split, index), f"{split}_{index:06d}"
        rng = stream_rng(seed, split, index, QUESTION_PURPOSE)  # the caption's draws come first, then the QA's
        stage1.append(caption_record(record_id, image, scene, rng))
        stage2.append(qa_record(record_id, image, scene, rng, stats, turns))
    return stage1, stage2


def plan_world(seed: int, config: WorldScale) -> WorldPlan:
    """Every scene, record and benchmark row of the world of `seed` at `config`; nothing is rendered or written."""
    plan = WorldPlan()
    splits = {
        split: [sample_scene(stream_rng(seed, split, index, SCENE_PURPOSE), config) for index in range(count)]
        for split, count in (("train", config.num_train_images), ("val", config.num_val_images))
    }
    stats = object_stats(splits["train"])  # POPE's popular/adversarial negatives: statistics of training data
    for split, scenes in splits.items():
        suffix = "" if split == "train" else "_val"
        stage1, stage2 = split_records(seed, split, scenes, stats, config.questions_per_image)
        plan.records["stage1" + suffix], plan.records["stage2" + suffix] = stage1, stage2
        plan.images += [(_split_image(split, index), scene) for index, scene in enumerate(scenes)]
    for task in TASKS:
        plan.bench_rows[task], images = bench_task(task, seed, config, stats)
        plan.images += [(f"bench/{task}/{image}", scene) for image, scene in images]
    return plan


def render_images(out: Path, images: list[tuple[str, Scene]], image_size: int, progress: bool) -> None:
    """Every planned image as a PNG under `out`, its folders made first; the progress bar goes to stderr."""
    for directory in {(out / image).parent for image, _ in images}:
        directory.mkdir(parents=True, exist_ok=True)
    for image, scene in tqdm(images, desc="rendering world", unit="img", disable=not progress):
        render_scene(scene, image_size).save(out / image, format="PNG")


def write_records_and_benchmarks(out: Path, plan: WorldPlan) -> None:
    """The stage json files, each benchmark folder's questions.parquet and meta.json, and scenes.json."""
    for name, records in plan.records.items():
        write_json(out / f"{name}.json", records)
    for task, rows in plan.bench_rows.items():
        write_bench(out / "bench" / task, task, rows)
    write_json(out / "scenes.json", {image: scene.summary() for image, scene in plan.images})


def world_counts(plan: WorldPlan, config: WorldScale) -> dict:
    """world.json's counts: records per stage file, images per split, questions per benchmark."""
    return {
        **{name: len(records) for name, records in plan.records.items()},
        "train_images": config.num_train_images,
        "val_images": config.num_val_images,
        "bench_images": len(plan.images) - config.num_train_images - config.num_val_images,
        "bench": {task: len(rows) for task, rows in plan.bench_rows.items()},
    }


def _clear_previous_world(out: Path) -> None:
    """Rebuilding over an earlier world removes its images and benchmarks first, so none of them is left stale.

    Only a folder that holds a world.json is cleared; anything else that is not empty is refused, not overwritten.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise WorldError(f"--out '{out}' exists and is not a folder")
    if (out / "world.json").is_file():
        for name in ("images", "bench"):
            shutil.rmtree(out / name, ignore_errors=True)
    elif any(out.iterdir()):
        raise WorldError(f"--out '{out}' is not empty and holds no world.json; give an empty or new folder")


def _checked_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WorldError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def build_world(out_dir: str | Path, seed: int = 0, scale: str = "demo", progress: bool = True) -> dict:
    """Write a world into `out_dir` and return a summary: counts per file and task, and paths.

    The folder holds (see raylayers.world): images/, stage1.json, stage1_val.json, stage2.json, stage2_val.json,
    bench/<task>/, scenes.json and world.json. It must be new, empty or an earlier world (whose images and
    benchmarks are removed first); a bad scale name or seed raises WorldError before anything is touched.
    """
    if scale not in SCALES:
        raise WorldError(f"unknown scale {scale!r} (valid: {', '.join(SCALES)})")
    seed = _checked_seed(seed)
    config = SCALES[scale]
    out = Path(out_dir)
    _clear_previous_world(out)

    # Plan everything first, render second, write the JSON last: a crash never leaves records without images.
    plan = plan_world(seed, config)
    render_images(out, plan.images, config.image_size, progress)
    write_records_and_benchmarks(out, plan)
    counts = world_counts(plan, config)
    world = {"seed": seed, "scale": scale, "image_size": config.image_size, "grid": config.grid, "counts": counts,
             "tasks": dict(TASK_CATEGORIES), "vocabulary_size": len(vocabulary())}  # fmt: skip
    write_json(out / "world.json", world, indent=2)
    paths = {
        **{name: str(out / f"{name}.json") for name in (*plan.records, "world", "scenes")},
        "images": str(out / "images"),
        "bench": {task: str(out / "bench" / task) for task in TASKS},
    }
    return {"out_dir": str(out), "seed": seed, "scale": scale, "counts": counts, "paths": paths}
