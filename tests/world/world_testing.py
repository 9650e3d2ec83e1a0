"""What the world tests share: a 3 x 3 grid scale and readers of a built world's files.

Not a conftest: test modules import these by name (this folder is on sys.path while its tests run, as pytest's
default import mode puts it there).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from raylayers.world import WorldScale

# A tiny world on the 3 x 3 grid, so the centre/middle cell names and thirds in boxes are covered too.
TINY_GRID3 = WorldScale(image_size=48, grid=3, num_train_images=24, num_val_images=8, num_bench_questions=12,
                        max_objects=4, questions_per_image=3)  # fmt: skip


def read_json(path: Path):
    return json.loads(path.read_text())


def bench_rows(out: Path, task: str) -> list[dict]:
    return pq.read_table(out / "bench" / task / "questions.parquet").to_pylist()


def bench_scene(out: Path, task: str, row: dict) -> dict:
    return read_json(out / "scenes.json")[f"bench/{task}/{row['image']}"]
