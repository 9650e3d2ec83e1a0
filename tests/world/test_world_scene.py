"""scene.py: any sampled scene is well formed (objects in distinct cells of the grid, within the scale's limits)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from world_testing import TINY_GRID3

from raylayers.world import SCALES
from raylayers.world.scene import sample_scene


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([SCALES["tiny"], TINY_GRID3, SCALES["demo"]]))
def test_any_scene_is_well_formed(seed, scale):
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, scale)
    cells = [(o.row, o.col) for o in scene.objects] + ([scene.text_cell] if scene.text is not None else [])
    assert len(set(cells)) == len(cells) and 1 <= len(scene.objects) <= scale.max_objects
    assert all(0 <= row < scale.grid and 0 <= col < scale.grid for row, col in cells)
