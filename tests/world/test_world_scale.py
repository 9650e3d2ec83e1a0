"""scale.py: WorldScale refuses sizes a world cannot be built at."""

from __future__ import annotations

import pytest

from raylayers.world import WorldScale


def test_bad_scale_values_raise():
    with pytest.raises(ValueError, match="max_objects"):
        WorldScale(image_size=32, grid=2, num_train_images=1, num_val_images=1, num_bench_questions=6,
                   max_objects=4, questions_per_image=1)  # fmt: skip
    with pytest.raises(ValueError, match="grid 5"):
        WorldScale(image_size=64, grid=5, num_train_images=1, num_val_images=1, num_bench_questions=6,
                   max_objects=2, questions_per_image=1)  # fmt: skip


def test_the_grids_a_scale_allows_are_the_grids_with_cell_names():
    from raylayers.config.world import GRIDS
    from raylayers.world.words import CELL_NAMES

    assert tuple(sorted(CELL_NAMES)) == GRIDS
