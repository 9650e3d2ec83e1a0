"""__init__.py: raylayers.world re-exports the names other modules and tests use, each the object its module defines."""

from __future__ import annotations

from raylayers import world
from raylayers.world import build, questions, render, scale, scene, words

DEFINED_IN = {
    build: ["build_world"],
    questions: ["POPE_SPLITS", "QUESTION_MAKERS", "TASKS", "TASK_CATEGORIES", "TASK_META", "ObjectStats", "Question",
                "caption", "object_stats", "pope_negative"],
    render: ["render_scene"],
    scale: ["SCALES", "WorldError", "WorldScale"],
    scene: ["Scene", "SceneObject", "sample_scene"],
    words: ["CAPTION_REQUESTS", "CELL_NAMES", "COLOURS", "SHAPES", "SIZES", "cell_box", "vocabulary"],
}  # fmt: skip


def test_every_public_name_is_the_object_its_module_defines():
    for module, names in DEFINED_IN.items():
        for name in names:
            assert getattr(world, name) is getattr(module, name), name
    assert sorted(world.__all__) == sorted(name for names in DEFINED_IN.values() for name in names)


def test_vocabulary_is_the_function_not_a_submodule():
    # A submodule named like a re-exported function would replace it on the package once imported.
    assert callable(world.vocabulary) and world.vocabulary() == words.vocabulary()
