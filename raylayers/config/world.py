"""`raylayers world --scale`: how big the offline world is, and the named presets.

A scale fixes the image size, the grid, how many images and questions each file holds and how crowded a scene may
be; the seed fixes everything else (`raylayers.world`).
"""

from __future__ import annotations

from pydantic import ConfigDict, PositiveInt, model_validator

from raylayers.config.base import Section

GRIDS = (2, 3)
"""Grids whose cells have names ("top left", ...): `raylayers.world.words.CELL_NAMES` (a test keeps them equal)."""


class WorldScale(Section):
    """How big a world is; `SCALES` names the presets."""

    model_config = ConfigDict(frozen=True)

    image_size: PositiveInt
    """Side of the square images, in pixels."""
    grid: int
    """Objects sit on a grid x grid layout of cells (2 or 3: cell names like "top left" exist for those)."""
    num_train_images: PositiveInt
    """Images behind stage1.json and stage2.json (the same pool for both stages, as in LLaVA)."""
    num_val_images: PositiveInt
    """Held-out images behind stage1_val.json and stage2_val.json."""
    num_bench_questions: int
    """Questions per benchmark task (POPE rounds down to a multiple of 6 so each of its 3 splits is balanced)."""
    max_objects: int
    """Most shapes in one image; every image has at least one."""
    questions_per_image: PositiveInt
    """Question/answer turn pairs in one stage-2 record."""

    @model_validator(mode="after")
    def _buildable(self) -> WorldScale:
        if self.grid not in GRIDS:
            raise ValueError(f"grid {self.grid} has no cell names (valid: {', '.join(map(str, GRIDS))})")
        if not 1 <= self.max_objects <= self.grid**2 - 1:  # the text needs a free cell
            raise ValueError(f"max_objects {self.max_objects} must be in 1..{self.grid**2 - 1} for grid {self.grid}")
        if self.image_size < 8 * self.grid:
            raise ValueError(f"image_size {self.image_size} is too small for grid {self.grid} (min {8 * self.grid})")
        if self.num_bench_questions < 6:
            raise ValueError(f"num_bench_questions {self.num_bench_questions} < 6 leaves POPE's splits empty")
        return self


SCALES: dict[str, WorldScale] = {
    "tiny": WorldScale(image_size=32, grid=2, num_train_images=48, num_val_images=16, num_bench_questions=12,
                       max_objects=3, questions_per_image=3),
    "demo": WorldScale(image_size=64, grid=3, num_train_images=3000, num_val_images=300, num_bench_questions=200,
                       max_objects=4, questions_per_image=4),
    "full": WorldScale(image_size=96, grid=3, num_train_images=30_000, num_val_images=1000,
                       num_bench_questions=1000, max_objects=5, questions_per_image=6),
}  # fmt: skip
