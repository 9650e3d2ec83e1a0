"""The offline world: its file contracts, determinism, and answers that agree with the scenes that drew the images."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from raylayers import world
from raylayers.prompts import IMAGE_TOKEN, option_letters, parse_question, split_words
from raylayers.world import SCALES, WorldScale, build_world, vocabulary

CATEGORIES = {"general", "ocr", "vision_centric", "hallucination"}
MULTIPLE_CHOICE_TASKS = {"attributes", "position", "relation", "localize"}
# A tiny world on the 3 x 3 grid, so the centre/middle cell names and thirds in boxes are covered too.
TINY_GRID3 = WorldScale(image_size=48, grid=3, num_train_images=24, num_val_images=8, num_bench_questions=12,
                        max_objects=4, questions_per_image=3)  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_world(out, seed=0, scale="tiny", progress=False)
    return out


@pytest.fixture(scope="module")
def tiny_grid3(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_grid3")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SCALES, "tiny_grid3", TINY_GRID3)
        build_world(out, seed=3, scale="tiny_grid3", progress=False)
    return out


@pytest.fixture(params=["tiny", "tiny_grid3"])
def any_world(request) -> Path:
    return request.getfixturevalue(request.param)


def read_json(path: Path):
    return json.loads(path.read_text())


def bench_rows(out: Path, task: str) -> list[dict]:
    return pq.read_table(out / "bench" / task / "questions.parquet").to_pylist()


def bench_scene(out: Path, task: str, row: dict) -> dict:
    return read_json(out / "scenes.json")[f"bench/{task}/{row['image']}"]


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def cell_box(row: int, col: int, grid: int) -> str:
    return f"[{col / grid:.2f}, {row / grid:.2f}, {(col + 1) / grid:.2f}, {(row + 1) / grid:.2f}]"


# --- building -------------------------------------------------------------------------------------------------


def test_tiny_world_summary(tmp_path):
    summary = build_world(tmp_path, seed=0, scale="tiny", progress=False)
    tiny = SCALES["tiny"]
    assert summary["counts"]["stage1"] == summary["counts"]["stage2"] == tiny.num_train_images
    assert summary["counts"]["stage1_val"] == summary["counts"]["stage2_val"] == tiny.num_val_images
    assert set(summary["counts"]["bench"]) == set(world.TASKS)
    assert all(count >= 6 for count in summary["counts"]["bench"].values())
    assert Path(summary["paths"]["stage2"]) == tmp_path / "stage2.json"
    assert Path(summary["paths"]["bench"]["pope"]) == tmp_path / "bench" / "pope"


def test_same_seed_is_byte_identical_and_other_seed_differs(tiny, tmp_path):
    build_world(tmp_path / "again", seed=0, scale="tiny", progress=False)
    build_world(tmp_path / "other", seed=1, scale="tiny", progress=False)
    assert file_digests(tmp_path / "again") == file_digests(tiny)
    other = file_digests(tmp_path / "other")
    assert (tmp_path / "other" / "stage2.json").read_bytes() != (tiny / "stage2.json").read_bytes()
    assert other["images/train_000000.png"] != file_digests(tiny)["images/train_000000.png"]


def test_progress_bar_goes_to_stderr_only(tmp_path, capsys):
    build_world(tmp_path, seed=0, scale="tiny", progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "rendering world" in captured.err


def test_bad_scale_names_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=re.escape("unknown scale 'huge' (valid: tiny, demo, full)")):
        build_world(tmp_path, scale="huge")
    assert not any(tmp_path.iterdir())


def test_bad_seed_and_bad_scale_values_raise(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        build_world(tmp_path, seed=-1, scale="tiny")
    with pytest.raises(ValueError, match="max_objects"):
        WorldScale(image_size=32, grid=2, num_train_images=1, num_val_images=1, num_bench_questions=6,
                   max_objects=4, questions_per_image=1)  # fmt: skip
    with pytest.raises(ValueError, match="grid 5"):
        WorldScale(image_size=64, grid=5, num_train_images=1, num_val_images=1, num_bench_questions=6,
                   max_objects=2, questions_per_image=1)  # fmt: skip


# --- the file contract ----------------------------------------------------------------------------------------


def test_world_json(any_world):
    info = read_json(any_world / "world.json")
    assert set(info) == {"seed", "scale", "image_size", "grid", "counts", "tasks", "vocabulary_size"}
    assert info["tasks"] == world.TASK_CATEGORIES
    assert info["vocabulary_size"] == len(vocabulary())
    with Image.open(any_world / "images" / "train_000000.png") as image:
        assert image.size == (info["image_size"], info["image_size"]) and image.mode == "RGB"


def test_stage1_captions(any_world):
    scenes = read_json(any_world / "scenes.json")
    for name in ("stage1.json", "stage1_val.json"):
        for record in read_json(any_world / name):
            assert set(record) == {"id", "image", "conversations"}
            human, gpt = record["conversations"]
            assert human["from"] == "human" and gpt["from"] == "gpt"
            assert human["value"].startswith(IMAGE_TOKEN + "\n")
            assert human["value"][len(IMAGE_TOKEN) + 1 :] in world.CAPTION_REQUESTS
            scene = scenes[record["image"]]
            for obj in scene["objects"]:
                assert f"a {obj['size']} {obj['colour']} {obj['shape']} in the {obj['cell']}" in gpt["value"]
            assert ("The text reads" in gpt["value"]) == (scene["text"] is not None)


def test_stage2_turns_use_the_benchmark_prompt_formats(any_world):
    for name in ("stage2.json", "stage2_val.json"):
        records = read_json(any_world / name)
        assert len({record["id"] for record in records}) == len(records)
        for record in records:
            conversation = record["conversations"]
            assert [turn["from"] for turn in conversation] == ["human", "gpt"] * (len(conversation) // 2)
            assert conversation[0]["value"].startswith(IMAGE_TOKEN + "\n")
            assert all(IMAGE_TOKEN not in turn["value"] for turn in conversation[1:])
            for human, gpt in zip(conversation[::2], conversation[1::2]):
                _, options = parse_question(human["value"])
                if options:
                    assert gpt["value"] in option_letters(len(options))
                    assert len(set(options)) == len(options)


def test_stage2_has_questions_per_image_turns_and_every_task(tiny):
    records = read_json(tiny / "stage2.json")
    assert all(len(record["conversations"]) == 2 * SCALES["tiny"].questions_per_image for record in records)
    questions = [parse_question(turn["value"])[0] for r in records for turn in r["conversations"][::2]]
    starts = {"What colour": "attributes", "What shape": "attributes", "What size": "attributes",
              "What does the text": "ocr", "How many": "count", "Where is": "position",
              "Is the": "relation", "Which box": "localize", "Is there": "pope"}  # fmt: skip
    tasks = {task for question in questions for start, task in starts.items() if question.startswith(start)}
    assert tasks == set(world.TASKS)


def test_bench_folders_follow_the_contract(any_world):
    categories = set()
    for task, category in world.TASK_CATEGORIES.items():
        folder = any_world / "bench" / task
        meta = read_json(folder / "meta.json")
        assert set(meta) == {"task", "category", "metric", "answer_type", "num_questions", "description"}
        assert meta["task"] == task and meta["category"] == category
        assert meta["metric"] in {"mc_accuracy", "exact_match", "ocr_contains", "pope"}
        table = pq.read_table(folder / "questions.parquet")
        for column in ("question_id", "image", "question", "answer", "task", "category"):
            assert table.schema.field(column).type == pa.string(), column
        assert table.schema.field("options").type == pa.list_(pa.string())
        rows = table.to_pylist()
        assert meta["num_questions"] == len(rows) > 0
        assert len({row["question_id"] for row in rows}) == len(rows)
        for row in rows:
            assert row["task"] == task and row["category"] == category
            assert (folder / row["image"]).is_file() and not Path(row["image"]).is_absolute()
            if meta["answer_type"] == "multiple_choice":
                assert 2 <= len(row["options"]) <= 4 and len(set(row["options"])) == len(row["options"])
                assert row["answer"] in option_letters(len(row["options"]))
            else:
                assert row["options"] == []
            if meta["answer_type"] == "yes_no":
                assert row["answer"] in {"yes", "no"}
        categories.add(category)
    assert categories == CATEGORIES


def test_image_sets_are_disjoint_and_every_referenced_image_exists(any_world):
    referenced = {"train": set(), "val": set(), "bench": set()}
    for name, split in (("stage1", "train"), ("stage2", "train"), ("stage1_val", "val"), ("stage2_val", "val")):
        for record in read_json(any_world / f"{name}.json"):
            assert (any_world / record["image"]).is_file()
            referenced[split].add(record["image"])
    for task in world.TASKS:
        referenced["bench"] |= {f"bench/{task}/{row['image']}" for row in bench_rows(any_world, task)}
    contents = {
        split: {hashlib.sha256((any_world / path).read_bytes()).hexdigest() for path in paths}
        for split, paths in referenced.items()
    }
    for first, second in (("train", "val"), ("train", "bench"), ("val", "bench")):
        assert not referenced[first] & referenced[second]
        assert not contents[first] & contents[second]
    assert len(contents["train"]) == len(referenced["train"])  # no two training images are the same picture


# --- answers agree with the scenes ----------------------------------------------------------------------------


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


# --- vocabulary -----------------------------------------------------------------------------------------------


def test_vocabulary_is_sorted_unique_and_fixed():
    words = vocabulary()
    assert words == sorted(set(words)) == vocabulary()
    assert all(word and not any(ch.isspace() for ch in word) and word == word.lower() for word in words)
    assert {"circle", "circles", "center", "middle", "?", "[", "0", "9", "<image>", "'", "s"} <= set(words)


def test_every_word_written_is_in_the_vocabulary(any_world):
    known = set(vocabulary())
    texts = []
    for name in ("stage1", "stage1_val", "stage2", "stage2_val"):
        records = read_json(any_world / f"{name}.json")
        texts += [turn["value"] for record in records for turn in record["conversations"]]
    for task in world.TASKS:
        for row in bench_rows(any_world, task):
            texts += [row["question"], row["answer"], *row["options"]]
    texts += [scene["text"] for scene in read_json(any_world / "scenes.json").values() if scene["text"]]
    unknown = {word for text in texts for word in split_words(text)} - known
    assert not unknown


# --- properties of scenes and questions -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([SCALES["tiny"], TINY_GRID3, SCALES["demo"]]))
def test_any_scene_is_well_formed_and_its_questions_are_valid(seed, scale):
    rng = np.random.default_rng(seed)
    scene = world.sample_scene(rng, scale)
    cells = [(o.row, o.col) for o in scene.objects] + ([scene.text_cell] if scene.text is not None else [])
    assert len(set(cells)) == len(cells) and 1 <= len(scene.objects) <= scale.max_objects
    assert all(0 <= row < scale.grid and 0 <= col < scale.grid for row, col in cells)

    stats = world.object_stats([world.sample_scene(rng, scale) for _ in range(20)])
    known = set(vocabulary())
    for task, make in world.QUESTION_MAKERS.items():
        question = make(scene, rng, stats)
        if question is None:
            continue
        assert question.task == task
        if question.options:
            assert question.answer in option_letters(len(question.options))
            assert len(set(question.options)) == len(question.options)
        assert set(split_words(" ".join([question.question, question.answer, *question.options]))) <= known
    for split in world.POPE_SPLITS:
        assert world.pope_negative(scene, rng, stats, split) not in scene.combos()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_rendering_is_a_pure_function_of_the_scene(seed):
    scene = world.sample_scene(np.random.default_rng(seed), TINY_GRID3, with_text=True)
    first, second = world.render_scene(scene, 48), world.render_scene(scene, 48)
    assert first.size == (48, 48) and first.tobytes() == second.tobytes()
    pixels = np.asarray(first).reshape(-1, 3)
    assert (pixels.max(axis=1) > 150).any()  # shapes and text are bright on the dark background


def test_rebuilding_leaves_no_stale_images_and_refuses_foreign_folders(tmp_path):
    out = tmp_path / "w"
    build_world(out, seed=0, scale="tiny", progress=False)
    stale = out / "images" / "train_999999.png"
    stale.write_bytes(b"old")
    build_world(out, seed=1, scale="tiny", progress=False)
    assert not stale.exists()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="not empty and holds no world.json"):
        build_world(foreign, seed=0, scale="tiny", progress=False)
    assert (foreign / "holiday.jpg").exists()
