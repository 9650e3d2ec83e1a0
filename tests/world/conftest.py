"""Built worlds for the world tests: the tiny preset (2 x 2 grid) and a tiny 3 x 3 one, each built once a session."""

from __future__ import annotations

from pathlib import Path

import pytest
from world_testing import TINY_GRID3

from raylayers.world import SCALES, build_world


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_world(out, seed=0, scale="tiny", progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_grid3(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_grid3")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SCALES, "tiny_grid3", TINY_GRID3)
        build_world(out, seed=3, scale="tiny_grid3", progress=False)
    return out


@pytest.fixture(params=["tiny", "tiny_grid3"])
def any_world(request) -> Path:
    return request.getfixturevalue(request.param)
