"""How big a world is: `WorldScale`, its checks, and the named presets in `SCALES`.

A scale fixes the image size, the grid, how many images and questions each file holds and how crowded a scene may
be; the seed fixes everything else. `WorldError` is the one error a bad scale or a bad `build_world` argument raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from raylayers.errors import UserError
from raylayers.world.words import CELL_NAMES


class WorldError(UserError, ValueError):
    """A bad argument to `build_world` (a ValueError for library callers, a one-line UserError for the CLI)."""


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
