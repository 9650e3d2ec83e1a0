"""build.py: the world folder's file contract, determinism, argument checks and rebuilding over an old world."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from world_testing import bench_rows, read_json

from raylayers.prompts import IMAGE_TOKEN, option_letters, parse_question
from raylayers.world import SCALES, build_world, vocabulary
from raylayers.world.questions import TASK_CATEGORIES, TASKS
from raylayers.world.words import CAPTION_REQUESTS

CATEGORIES = {"general", "ocr", "vision_centric", "hallucination"}


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# --- building ----------------------------------------------------------------------------------------------------


def test_tiny_world_summary(tmp_path):
    summary = build_world(tmp_path, seed=0, scale="tiny", progress=False)
    tiny = SCALES["tiny"]
    assert summary["counts"]["stage1"] == summary["counts"]["stage2"] == tiny.num_train_images
    assert summary["counts"]["stage1_val"] == summary["counts"]["stage2_val"] == tiny.num_val_images
    assert set(summary["counts"]["bench"]) == set(TASKS)
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


def test_bad_seed_raises(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        build_world(tmp_path, seed=-1, scale="tiny")


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


# --- the file contract -------------------------------------------------------------------------------------------


def test_world_json(any_world):
    info = read_json(any_world / "world.json")
    assert set(info) == {"seed", "scale", "image_size", "grid", "counts", "tasks", "vocabulary_size"}
    assert info["tasks"] == TASK_CATEGORIES
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
            assert human["value"][len(IMAGE_TOKEN) + 1 :] in CAPTION_REQUESTS
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
    assert tasks == set(TASKS)


def test_bench_folders_follow_the_contract(any_world):
    categories = set()
    for task, category in TASK_CATEGORIES.items():
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
    for task in TASKS:
        referenced["bench"] |= {f"bench/{task}/{row['image']}" for row in bench_rows(any_world, task)}
    contents = {
        split: {hashlib.sha256((any_world / path).read_bytes()).hexdigest() for path in paths}
        for split, paths in referenced.items()
    }
    for first, second in (("train", "val"), ("train", "bench"), ("val", "bench")):
        assert not referenced[first] & referenced[second]
        assert not contents[first] & contents[second]
    assert len(contents["train"]) == len(referenced["train"])  # no two training images are the same picture
