"""render.py: rendering is a pure function of the scene, and what it draws stands out from the background."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from world_testing import TINY_GRID3

from raylayers.world.render import render_scene
from raylayers.world.scene import sample_scene


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_rendering_is_a_pure_function_of_the_scene(seed):
    scene = sample_scene(np.random.default_rng(seed), TINY_GRID3, with_text=True)
    first, second = render_scene(scene, 48), render_scene(scene, 48)
    assert first.size == (48, 48) and first.tobytes() == second.tobytes()
    pixels = np.asarray(first).reshape(-1, 3)
    assert (pixels.max(axis=1) > 150).any()  # shapes and text are bright on the dark background
