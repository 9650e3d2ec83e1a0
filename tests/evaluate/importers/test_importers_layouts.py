"""Each layout's tiny look-alike parquet is detected, imported and checked against what its converter writes."""

from __future__ import annotations

import io
import json

import pytest
from importer_sources import SOURCES, image, png, read_rows, write
from PIL import Image

from raylayers.errors import UserError
from raylayers.evaluate.importers import (
    LAYOUTS,
    METRICS,
    detect_layout,
    import_benchmark,
    is_benchmark_folder,
    split_inline_options,
)
from raylayers.evaluate.metrics import METRICS as SCORERS
from raylayers.evaluate.schema import CATEGORIES


@pytest.fixture
def imported(tmp_path):
    """Build a layout's source, check it is detected, import it; returns (rows, meta, out folder)."""

    def run(name: str, **kwargs):
        src, out = tmp_path / f"{name}_src", tmp_path / f"{name}_out"
        SOURCES[name](src)
        assert detect_layout(src) == name
        meta = import_benchmark(src, out, **kwargs)
        assert meta == json.loads((out / "meta.json").read_text())
        assert is_benchmark_folder(out)
        rows = read_rows(out)
        layout = LAYOUTS[name]
        assert meta["layout"] == meta["task"] == name and meta["source"] == str(src)
        assert meta["category"] == layout.category in CATEGORIES and meta["metric"] in METRICS
        assert meta["num_questions"] == len(rows) > 0
        assert meta["num_skipped"] == sum(meta["skipped"].values())
        for key in ("answer_type", "description", "dataset", "files"):
            assert meta[key]
        assert len({row["question_id"] for row in rows}) == len(rows)
        for row in rows:
            assert row["task"] == name and row["category"] == layout.category
            assert row["question"] and row["answer"] and isinstance(row["options"], list)
            Image.open(io.BytesIO(row["image"])).load()  # the bytes are a decodable image
            if row["options"]:
                assert row["answer"] in "ABCDEFGH"[:len(row["options"])]
        return rows, meta, out

    return run


def test_every_layout_has_a_test_source():
    assert set(SOURCES) == set(LAYOUTS)
    for layout in LAYOUTS.values():
        assert layout.category in CATEGORIES and layout.metric in METRICS


def test_mme(imported):
    rows, meta, _ = imported("mme")
    assert meta["metric"] == "mme" and meta["answer_type"] == "yes_no" and meta["category"] == "general"
    assert [row["question_id"] for row in rows] == ["existence/1.png-0", "existence/1.png-1", "code_reasoning/2.png-0"]
    assert [row["image_id"] for row in rows] == ["existence/1.png", "existence/1.png", "code_reasoning/2.png"]
    assert [row["answer"] for row in rows] == ["yes", "no", "no"]
    assert [row["subtask"] for row in rows] == ["existence", "existence", "code_reasoning"]
    assert rows[0]["image"] == png(1) and rows[2]["image"] == png(2)
    assert meta["files"] == ["data/test-00000-of-00002.parquet", "data/test-00001-of-00002.parquet"]


def test_mmbench(imported):
    rows, meta, _ = imported("mmbench")
    assert meta["metric"] == "mmbench"
    first, second = rows
    assert first["question_id"] == "7" and second["question_id"] == "1000007"
    assert first["group"] == second["group"] == 7  # circular copies share a group
    assert first["question"] == "A zoo photo.\nWhat is shown?" and second["question"] == "What is shown?"
    assert first["options"] == ["cat", "dog", "owl"] and first["answer"] == "B"
    assert first["subtask"] == "image_scene" and first["l2_category"] == "coarse" and first["hint"] == "A zoo photo."
    assert first["image"] == png(3)


def test_seed_bench_skips_video_questions(imported):
    rows, meta, _ = imported("seed_bench")
    assert meta["metric"] == "seed_bench"
    assert [row["question_id"] for row in rows] == ["101", "103"]
    assert [row["answer"] for row in rows] == ["C", "D"]
    assert rows[0]["options"] == ["1", "2", "3", "4"] and rows[0]["question_type_id"] == 5
    assert rows[1]["image"] == png(7)
    assert meta["num_skipped"] == 1 and list(meta["skipped"]) == ["data_type=video (only image questions are kept)"]


def test_gqa_joins_images_and_counts_missing_ones(imported):
    rows, meta, _ = imported("gqa")
    by_id = {row["question_id"]: row for row in rows}
    assert sorted(by_id) == ["q1", "q2", "q3"]
    assert by_id["q1"]["image"] == by_id["q3"]["image"] == png(9) and by_id["q2"]["image"] == png(8)
    assert by_id["q2"]["answer"] == "cup" and by_id["q1"]["image_id"] == "n1"
    assert meta["metric"] == "gqa" and meta["skipped"] == {"image not in the images files": 1}


def test_textvqa(imported):
    rows, meta, _ = imported("textvqa")
    assert meta["metric"] == "vqa_accuracy" and meta["category"] == "ocr"
    assert [row["answer"] for row in rows] == ["nokia", "stop"]  # the most common; "stop" wins a 3-3 tie by order
    assert len(rows[0]["answers"]) == 10 and rows[0]["question_id"] == "34602" and rows[0]["image_id"] == "abc"


def test_ocrbench(imported):
    rows, meta, _ = imported("ocrbench")
    assert meta["metric"] == "ocr_contains"
    assert [row["question_id"] for row in rows] == ["0", "1"]
    assert rows[0]["answer"] == "HELLO" and rows[0]["answers"] == ["HELLO", "hello"]
    assert rows[1]["question_type"] == "Handwritten Mathematical Expression Recognition"
    assert rows[1]["dataset"] == "HME100k"
    # the official formula rule applies to the imported HME100k row: spaces dropped, case kept
    scored = SCORERS["ocr_contains"]([{**rows[0], "prediction": "It says hello"},
                                      {**rows[1], "prediction": "x ^ { 2 }"}])
    assert [q["correct"] for q in scored["per_question"]] == [True, True]
    assert SCORERS["ocr_contains"]([{**rows[1], "prediction": "X^{2}"}])["score"] == 0.0


def test_cv_bench(imported):
    rows, meta, _ = imported("cv_bench")
    assert meta["category"] == "vision_centric" and meta["metric"] == "cv_bench"
    assert [row["answer"] for row in rows] == ["B", "A"]
    assert rows[0]["options"] == ["1", "2", "3"] and rows[0]["subtask"] == "Count" and rows[0]["type"] == "2D"
    assert rows[1]["source"] == "Omni3D" and rows[1]["prompt"].startswith("Which is closer?")


def test_pope(imported):
    rows, meta, _ = imported("pope")
    assert meta["metric"] == "pope" and meta["category"] == "hallucination" and meta["answer_type"] == "yes_no"
    assert [row["question_id"] for row in rows] == ["adversarial-1", "popular-1", "random-2"]
    assert [row["split"] for row in rows] == ["adversarial", "popular", "random"]
    assert [row["answer"] for row in rows] == ["yes", "yes", "no"] and rows[2]["image_id"] == "COCO_2"


def test_realworldqa_mixes_choice_and_short_answers(imported):
    rows, meta, _ = imported("realworldqa")
    first, second, third = rows
    assert first["question"] == "Which way is the car facing?"
    assert first["options"] == ["left", "right", "towards us"] and first["answer"] == "B"
    assert "Please answer directly" in first["prompt"]
    assert second["options"] == [] and second["answer"] == "3" and second["question"].startswith("How many lanes")
    assert third["options"] == ["red", "green"] and third["answer"] == "B"  # option text mapped to its letter
    assert [row["source_answer"] for row in rows] == ["B", "3", "green"]  # the answer as given, for the official rule
    assert meta["metric"] == "realworldqa" and meta["answer_type"] == "short"  # mixed: not all multiple choice


def test_realworldqa_all_choice_is_multiple_choice(tmp_path):
    write(tmp_path / "src" / "test.parquet",
          [{"question": "Q?\nA. x\nB. y", "answer": "A", "image": image(40)}])
    meta = import_benchmark(tmp_path / "src", tmp_path / "out", layout="realworldqa")
    assert meta["metric"] == "realworldqa" and meta["answer_type"] == "multiple_choice"


def test_split_inline_options():
    assert split_inline_options("Q\nA) one\nB) two\nthen") == ("Q", ["one", "two"], "then")
    assert split_inline_options("A. lonely\nnothing else") == ("A. lonely\nnothing else", [], "")
    assert split_inline_options("Q\nB. one\nC. two") == ("Q\nB. one\nC. two", [], "")


def test_mmvp(imported):
    rows, meta, _ = imported("mmvp")
    assert meta["metric"] == "mmvp"
    assert [row["options"] for row in rows] == [["Open", "Closed"]] * 2 + [["Left", "Right"]]
    assert [row["answer"] for row in rows] == ["A", "B", "B"]
    assert [row["group"] for row in rows] == [0, 0, 1]
    assert [row["question_id"] for row in rows] == ["1", "2", "3"]


def test_scienceqa_img_skips_rows_without_image(imported):
    rows, meta, _ = imported("scienceqa_img")
    assert meta["metric"] == "scienceqa_img"
    assert [row["question_id"] for row in rows] == ["0", "2"]  # source row indices
    assert rows[0]["question"] == "Look at the animals.\nWhich is a mammal?" and rows[0]["answer"] == "B"
    assert rows[1]["question"] == "Which is hotter?" and rows[1]["options"] == ["ice", "fire"]
    assert rows[0]["subject"] == "natural science"
    assert meta["skipped"] == {"missing image": 1}


# ------------------------------------------------------------------------------------------------ an imported folder
def test_benchmark_folder_is_not_a_source(tmp_path, imported):
    _, _, out = imported("pope")
    assert detect_layout(out) is None
    with pytest.raises(UserError, match="already a benchmark folder"):
        import_benchmark(out, tmp_path / "again")
    with pytest.raises(UserError, match="limit"):
        import_benchmark(out, tmp_path / "again", limit=0)
