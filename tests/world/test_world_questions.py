"""questions.py: every question is valid, and every benchmark answer agrees with the scene that drew its image."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from world_testing import TINY_GRID3, bench_rows, bench_scene, read_json

from raylayers.prompts import option_letters, split_words
from raylayers.world import SCALES, vocabulary
from raylayers.world.questions import POPE_SPLITS, QUESTION_MAKERS, object_stats, pope_negative
from raylayers.world.scene import sample_scene

MULTIPLE_CHOICE_TASKS = {"attributes", "position", "relation", "localize"}


def cell_box(row: int, col: int, grid: int) -> str:
    return f"[{col / grid:.2f}, {row / grid:.2f}, {(col + 1) / grid:.2f}, {(row + 1) / grid:.2f}]"


# --- questions of any scene --------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([SCALES["tiny"], TINY_GRID3, SCALES["demo"]]))
def test_any_scenes_questions_are_valid(seed, scale):
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, scale)  # drawn as test_world_scene.py draws it, so the same scenes are covered

    stats = object_stats([sample_scene(rng, scale) for _ in range(20)])
    known = set(vocabulary())
    for task, make in QUESTION_MAKERS.items():
        question = make(scene, rng, stats)
        if question is None:
            continue
        assert question.task == task
        if question.options:
            assert question.answer in option_letters(len(question.options))
            assert len(set(question.options)) == len(question.options)
        assert set(split_words(" ".join([question.question, question.answer, *question.options]))) <= known
    for split in POPE_SPLITS:
        assert pope_negative(scene, rng, stats, split) not in scene.combos()


# --- answers agree with the scenes -------------------------------------------------------------------------------


def named(objects: list[dict], colour: str, shape: str) -> list[dict]:
    return [o for o in objects if (o["colour"], o["shape"]) == (colour, shape)]


def test_multiple_choice_answers_match_the_scene(any_world):
    grid = read_json(any_world / "world.json")["grid"]
    for task in MULTIPLE_CHOICE_TASKS:
        for row in bench_rows(any_world, task):
            objects = bench_scene(any_world, task, row)["objects"]
            chosen = row["options"][option_letters(len(row["options"])).index(row["answer"])]
            question = row["question"]
            if match := re.fullmatch(r"What colour is the (\w+)\?", question):
                [obj] = [o for o in objects if o["shape"] == match[1]]  # exactly one: uniquely identified
                assert chosen == obj["colour"]
            elif match := re.fullmatch(r"What shape is the (\w+) object\?", question):
                [obj] = [o for o in objects if o["colour"] == match[1]]
                assert chosen == obj["shape"]
            elif match := re.fullmatch(r"What size is the (\w+) (\w+)\?", question):
                [obj] = named(objects, match[1], match[2])
                assert chosen == obj["size"]
            elif match := re.fullmatch(r"Where is the (\w+) (\w+)\?", question):
                [obj] = named(objects, match[1], match[2])
                assert chosen == obj["cell"]
            elif match := re.fullmatch(r"Which box contains the (\w+) (\w+)\?", question):
                [obj] = named(objects, match[1], match[2])
                assert chosen == cell_box(obj["row"], obj["col"], grid)
            elif match := re.fullmatch(r"Is the (\w+) (\w+) (to the left of or to the right of|above or below) "
                                       r"the (\w+) (\w+)\?", question):  # fmt: skip
                [first], [second] = named(objects, match[1], match[2]), named(objects, match[4], match[5])
                if match[3] == "above or below":
                    assert first["row"] != second["row"]
                    assert chosen == ("above" if first["row"] < second["row"] else "below")
                else:
                    assert first["col"] != second["col"]
                    assert chosen == ("left" if first["col"] < second["col"] else "right")
            else:
                pytest.fail(f"unexpected {task} question {question!r}")


def count_in(objects: list[dict], things: str) -> int:
    words = things.split()
    if len(words) == 1:
        return sum(o["shape"] + "s" == words[0] for o in objects)
    if words[1] == "objects":
        return sum(o["colour"] == words[0] for o in objects)
    return sum(o["colour"] == words[0] and o["shape"] + "s" == words[1] for o in objects)


def test_count_answers_match_the_scene(any_world):
    answers = []
    for row in bench_rows(any_world, "count"):
        things = re.fullmatch(r"How many (.+) are there\?", row["question"])[1]
        assert row["answer"] == str(count_in(bench_scene(any_world, "count", row)["objects"], things))
        answers.append(row["answer"])
    assert len(set(answers)) >= 3  # spread over several counts, not a constant


def test_ocr_answers_are_the_rendered_text(any_world):
    for row in bench_rows(any_world, "ocr"):
        assert row["answer"] == bench_scene(any_world, "ocr", row)["text"]
        assert re.fullmatch(r"[a-z]+|\d{1,3}", row["answer"])


def test_pope_is_balanced_per_split_and_negatives_are_absent(any_world):
    rows = bench_rows(any_world, "pope")
    per_split = Counter((row["split"], row["answer"]) for row in rows)
    for split in ("random", "popular", "adversarial"):
        assert per_split[split, "yes"] == per_split[split, "no"] > 0
    assert {row["split"] for row in rows} == {"random", "popular", "adversarial"}
    for row in rows:
        colour, shape = re.fullmatch(r"Is there an? (\w+) (\w+) in the image\?", row["question"]).groups()
        objects = bench_scene(any_world, "pope", row)["objects"]
        present = any((o["colour"], o["shape"]) == (colour, shape) for o in objects)
        assert row["answer"] == ("yes" if present else "no")
