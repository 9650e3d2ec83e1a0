"""Importers of published benchmarks: each layout's tiny look-alike parquet is detected, imported and checked."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
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
from raylayers.evaluate.schema import CATEGORIES

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (shade, 255 - shade, 7)).save(buffer, format="PNG")
    return buffer.getvalue()


def image(shade: int) -> dict:
    return {"bytes": png(shade), "path": f"img{shade}.png"}


def write(path, rows: list[dict], types: dict | None = None) -> None:
    """A parquet file of rows; `types` pins the type of the columns pyarrow cannot infer (image structs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(rows[0])
    types = {"image": IMAGE_TYPE} | (types or {})
    schema = pa.schema([(name, types[name]) if name in types else (name, pa.array([r[name] for r in rows]).type)
                        for name in names])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def read_rows(out) -> list[dict]:
    return pq.read_table(out / "questions.parquet").to_pylist()


# ---------------------------------------------------------------------------------- one tiny source per layout
def src_mme(root):
    rows = [{"question_id": "existence/1.png", "image": image(1),
             "question": "Is there a dog? Please answer yes or no.",
             "answer": "Yes", "category": "existence"},
            {"question_id": "existence/1.png", "image": image(1), "question": "Is there a cat?", "answer": "No",
             "category": "existence"},
            {"question_id": "2.png", "image": image(2), "question": "Is the code printing 3?", "answer": "No",
             "category": "code_reasoning"}]
    write(root / "data" / "test-00000-of-00002.parquet", rows[:2])
    write(root / "data" / "test-00001-of-00002.parquet", rows[2:])


def src_mmbench(root):
    rows = [{"index": 7, "question": "What is shown?", "hint": "A zoo photo.", "A": "cat", "B": "dog", "C": "owl",
             "D": None, "answer": "B", "image": image(3), "category": "image_scene", "L2-category": "coarse",
             "split": "dev"},
            {"index": 1_000_007, "question": "What is shown?", "hint": None, "A": "dog", "B": "owl", "C": "cat",
             "D": None, "answer": "A", "image": image(3), "category": "image_scene", "L2-category": "coarse",
             "split": "dev"}]
    write(root / "en" / "dev-00000-of-00001.parquet", rows)


def src_seed_bench(root):
    rows = [{"question_id": "101", "question": "How many cars?", "choice_a": "1", "choice_b": "2", "choice_c": "3",
             "choice_d": "4", "answer": "C", "image": [image(4)], "data_type": "image", "question_type_id": 5,
             "data_id": "x.jpg"},
            {"question_id": "102", "question": "What happens next?", "choice_a": "a", "choice_b": "b",
             "choice_c": "c", "choice_d": "d", "answer": "A", "image": [image(5), image(6)], "data_type": "video",
             "question_type_id": 10, "data_id": "v.mp4"},
            {"question_id": "103", "question": "Which colour?", "choice_a": "red", "choice_b": "blue",
             "choice_c": "green", "choice_d": "black", "answer": "D", "image": [image(7)], "data_type": "image",
             "question_type_id": 2, "data_id": "y.jpg"}]
    write(root / "test-00000-of-00001.parquet", rows, {"image": pa.list_(IMAGE_TYPE)})


def src_gqa(root):
    questions = [{"id": "q1", "imageId": "n1", "question": "Is the sky blue?", "answer": "yes", "fullAnswer": "Yes."},
                 {"id": "q2", "imageId": "n2", "question": "What is on the table?", "answer": "cup",
                  "fullAnswer": "A cup."},
                 {"id": "q3", "imageId": "n1", "question": "What colour is the car?", "answer": "red",
                  "fullAnswer": "Red."},
                 {"id": "q4", "imageId": "n9", "question": "Where is the dog?", "answer": "park",
                  "fullAnswer": "In the park."}]
    write(root / "testdev_balanced_instructions" / "testdev-00000-of-00001.parquet", questions)
    write(root / "testdev_balanced_images" / "testdev-00000-of-00001.parquet",
          [{"id": "n2", "image": image(8)}, {"id": "n1", "image": image(9)}])


def src_textvqa(root):
    rows = [{"question_id": 34602, "question": "what brand is this?", "image": image(10), "image_id": "abc",
             "answers": ["nokia"] * 6 + ["nokia phone"] * 4},
            {"question_id": 34603, "question": "what does the sign say?", "image": image(11), "image_id": "abd",
             "answers": ["stop", "halt", "halt", "stop", "stop", "halt", "s", "x", "y", "z"]}]
    write(root / "data" / "validation-00000-of-00001.parquet", rows)


def src_ocrbench(root):
    rows = [{"question": "what is written?", "answer": ["HELLO", "hello"], "question_type": "Regular Text Recognition",
             "dataset": "IIIT5K", "image": image(12)},
            {"question": "Write the expression in LaTeX.", "answer": ["x^{2}"],
             "question_type": "Handwritten Mathematical Expression Recognition", "dataset": "HME100k",
             "image": image(13)}]
    write(root / "test.parquet", rows)


def src_cv_bench(root):
    rows = [{"idx": 0, "type": "2D", "task": "Count", "image": image(14), "question": "How many chairs?",
             "choices": ["1", "2", "3"], "answer": "(B)", "prompt": "How many chairs? (A) 1 (B) 2 (C) 3",
             "source": "ADE20K"},
            {"idx": 1, "type": "3D", "task": "Depth", "image": image(15), "question": "Which is closer?",
             "choices": ["lamp", "sofa"], "answer": "(A)", "prompt": "Which is closer? (A) lamp (B) sofa",
             "source": "Omni3D"}]
    write(root / "test.parquet", rows)


def src_pope(root):
    rows = [{"question_id": "1", "question": "Is there a dog in the image?", "answer": "yes",
             "image_source": "COCO_1", "image": image(16), "category": "adversarial", "id": 0},
            {"question_id": "1", "question": "Is there a dog in the image?", "answer": "yes",
             "image_source": "COCO_1", "image": image(16), "category": "popular", "id": 1},
            {"question_id": "2", "question": "Is there a kite in the image?", "answer": "No",
             "image_source": "COCO_2", "image": image(17), "category": "random", "id": 2}]
    write(root / "data" / "test-00000-of-00001.parquet", rows)


def src_realworldqa(root):
    rows = [{"question": "Which way is the car facing?\nA. left\nB. right\nC. towards us\nPlease answer directly "
                         "with only the letter of the correct option and nothing else.",
             "answer": "B", "image": image(18)},
            {"question": "How many lanes are there?\nPlease answer directly with a single word or number.",
             "answer": "3", "image": image(19)},
            {"question": "Is the light red or green?\nA. red\nB. green", "answer": "green", "image": image(20)}]
    write(root / "test.parquet", rows)


def src_mmvp(root):
    rows = [{"Index": 1, "Question": "Is the door open or closed?", "Options": "(a) Open (b) Closed",
             "Correct Answer": "(a)", "image": image(21)},
            {"Index": 2, "Question": "Is the door open or closed?", "Options": "(a) Open (b) Closed",
             "Correct Answer": "(b)", "image": image(22)},
            {"Index": 3, "Question": "Which direction is the dog facing?", "Options": "(a) Left (b) Right",
             "Correct Answer": "(b)", "image": image(23)}]
    write(root / "train.parquet", rows)


def src_scienceqa_img(root):
    rows = [{"question": "Which is a mammal?", "choices": ["frog", "whale", "shark"], "answer": 1,
             "hint": "Look at the animals.", "image": image(24), "subject": "natural science", "task": "closed choice",
             "category": "Classify"},
            {"question": "Which is a metal?", "choices": ["iron", "wood"], "answer": 0, "hint": "", "image": None,
             "subject": "natural science", "task": "closed choice", "category": "Classify"},
            {"question": "Which is hotter?", "choices": ["ice", "fire"], "answer": 1, "hint": "",
             "image": image(25), "subject": "physics", "task": "closed choice", "category": "Compare"}]
    write(root / "ScienceQA-IMG" / "test-00000-of-00001.parquet", rows)


SOURCES = {name: globals()[f"src_{name}"] for name in LAYOUTS}


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
    assert meta["metric"] == "mc_accuracy"
    first, second = rows
    assert first["question_id"] == "7" and second["question_id"] == "1000007"
    assert first["group"] == second["group"] == 7  # circular copies share a group
    assert first["question"] == "A zoo photo.\nWhat is shown?" and second["question"] == "What is shown?"
    assert first["options"] == ["cat", "dog", "owl"] and first["answer"] == "B"
    assert first["subtask"] == "image_scene" and first["l2_category"] == "coarse" and first["hint"] == "A zoo photo."
    assert first["image"] == png(3)


def test_seed_bench_skips_video_questions(imported):
    rows, meta, _ = imported("seed_bench")
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
    assert meta["metric"] == "exact_match" and meta["skipped"] == {"image not in the images files": 1}


def test_gqa_files_named_by_config(tmp_path):
    src = tmp_path / "gqa"
    write(src / "testdev_balanced_instructions.parquet",
          [{"id": "q1", "imageId": "n1", "question": "Is it red?", "answer": "no"}])
    write(src / "testdev_balanced_images.parquet", [{"id": "n1", "image": image(30)}])
    write(src / "train_all_images.parquet", [{"id": "n7", "image": image(31)}])  # another config: ignored
    assert detect_layout(src) == "gqa"
    meta = import_benchmark(src, tmp_path / "out")
    assert meta["num_questions"] == 1 and "train_all_images.parquet" not in meta["files"]


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


def test_cv_bench(imported):
    rows, meta, _ = imported("cv_bench")
    assert meta["category"] == "vision_centric" and meta["metric"] == "mc_accuracy"
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
    assert meta["metric"] == "exact_match" and meta["answer_type"] == "short"  # mixed: not all multiple choice


def test_realworldqa_all_choice_is_mc_accuracy(tmp_path):
    write(tmp_path / "src" / "test.parquet",
          [{"question": "Q?\nA. x\nB. y", "answer": "A", "image": image(40)}])
    meta = import_benchmark(tmp_path / "src", tmp_path / "out", layout="realworldqa")
    assert meta["metric"] == "mc_accuracy" and meta["answer_type"] == "multiple_choice"


def test_split_inline_options():
    assert split_inline_options("Q\nA) one\nB) two\nthen") == ("Q", ["one", "two"], "then")
    assert split_inline_options("A. lonely\nnothing else") == ("A. lonely\nnothing else", [], "")
    assert split_inline_options("Q\nB. one\nC. two") == ("Q\nB. one\nC. two", [], "")


def test_mmvp(imported):
    rows, _, _ = imported("mmvp")
    assert [row["options"] for row in rows] == [["Open", "Closed"]] * 2 + [["Left", "Right"]]
    assert [row["answer"] for row in rows] == ["A", "B", "B"]
    assert [row["group"] for row in rows] == [0, 0, 1]
    assert [row["question_id"] for row in rows] == ["1", "2", "3"]


def test_scienceqa_img_skips_rows_without_image(imported):
    rows, meta, _ = imported("scienceqa_img")
    assert [row["question_id"] for row in rows] == ["0", "2"]  # source row indices
    assert rows[0]["question"] == "Look at the animals.\nWhich is a mammal?" and rows[0]["answer"] == "B"
    assert rows[1]["question"] == "Which is hotter?" and rows[1]["options"] == ["ice", "fire"]
    assert rows[0]["subject"] == "natural science"
    assert meta["skipped"] == {"missing image": 1}


def test_limit_keeps_the_first_questions(tmp_path):
    src_pope(tmp_path / "src")
    meta = import_benchmark(tmp_path / "src", tmp_path / "out", limit=2)
    assert meta["num_questions"] == 2 and meta["limit"] == 2
    assert [row["question_id"] for row in read_rows(tmp_path / "out")] == ["adversarial-1", "popular-1"]


def test_repeated_question_ids_are_renamed_and_counted(tmp_path):
    write(tmp_path / "src" / "a.parquet", [{"idx": 0, "type": "2D", "task": "Count", "image": image(1),
                                            "question": "Q?", "choices": ["1", "2"], "answer": "(A)", "prompt": "P"}])
    write(tmp_path / "src" / "b.parquet", [{"idx": 0, "type": "3D", "task": "Depth", "image": image(2),
                                            "question": "Q2?", "choices": ["1", "2"], "answer": "(B)", "prompt": "P"}])
    meta = import_benchmark(tmp_path / "src", tmp_path / "out")
    assert [row["question_id"] for row in read_rows(tmp_path / "out")] == ["0", "0#2"]
    assert meta["num_renamed_ids"] == 1


def test_plain_bytes_and_relative_path_images(tmp_path):
    src = tmp_path / "src"
    (src / "pics").mkdir(parents=True)
    (src / "pics" / "a.png").write_bytes(png(50))
    write(src / "test.parquet", [
        {"question": "Q1?", "answer": "1", "image": {"bytes": None, "path": "pics/a.png"}},
        {"question": "Q2?", "answer": "2", "image": {"bytes": None, "path": "pics/none.png"}}])
    meta = import_benchmark(src, tmp_path / "out", layout="realworldqa")
    assert read_rows(tmp_path / "out")[0]["image"] == png(50) and meta["skipped"] == {"missing image": 1}
    write(tmp_path / "raw" / "test.parquet", [{"question": "Q?", "answer": "1", "image": png(51)}],
          {"image": pa.binary()})
    import_benchmark(tmp_path / "raw", tmp_path / "out2", layout="realworldqa")
    assert read_rows(tmp_path / "out2")[0]["image"] == png(51)


# ------------------------------------------------------------------------------------------------ errors
def test_missing_columns_are_all_named(tmp_path):
    src = tmp_path / "src"
    write(src / "test.parquet", [{"question_id": "1", "question": "Q?", "image": image(1)}])
    with pytest.raises(UserError, match=r"test\.parquet.*'answer', 'category'.*'mme'") as err:
        import_benchmark(src, tmp_path / "out", layout="mme")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out" / "questions.parquet").exists()


def test_gqa_missing_image_table_or_column(tmp_path):
    src = tmp_path / "src"
    write(src / "testdev_balanced_instructions.parquet",
          [{"id": "q1", "imageId": "n1", "question": "Q?", "answer": "no"}])
    with pytest.raises(UserError, match="instructions and the images"):
        import_benchmark(src, tmp_path / "out", layout="gqa")
    write(src / "testdev_balanced_images.parquet", [{"id": "n1", "picture": png(1)}], {"picture": pa.binary()})
    with pytest.raises(UserError, match=r"testdev_balanced_images\.parquet.*'image'"):
        import_benchmark(src, tmp_path / "out", layout="gqa")


def test_empty_folder(tmp_path):
    (tmp_path / "src").mkdir()
    assert detect_layout(tmp_path / "src") is None
    with pytest.raises(UserError, match="no .parquet files"):
        import_benchmark(tmp_path / "src", tmp_path / "out")
    with pytest.raises(UserError, match="not a folder"):
        import_benchmark(tmp_path / "nowhere", tmp_path / "out")


def test_unknown_layout_lists_the_valid_ones(tmp_path):
    src_pope(tmp_path / "src")
    with pytest.raises(UserError, match="unknown benchmark layout 'vqav2'.*cv_bench, gqa, mmbench"):
        import_benchmark(tmp_path / "src", tmp_path / "out", layout="vqav2")


def test_undetectable_and_non_parquet_sources(tmp_path):
    write(tmp_path / "src" / "x.parquet", [{"foo": 1, "bar": "b"}])
    assert detect_layout(tmp_path / "src") is None
    with pytest.raises(UserError, match="fit none"):
        import_benchmark(tmp_path / "src", tmp_path / "out")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.parquet").write_text("not parquet")
    with pytest.raises(UserError, match=r"x\.parquet"):
        import_benchmark(tmp_path / "bad", tmp_path / "out")


def test_mixed_benchmarks_are_not_detected(tmp_path):
    src_pope(tmp_path / "src" / "pope")
    src_textvqa(tmp_path / "src" / "textvqa")
    assert detect_layout(tmp_path / "src") is None


def test_everything_skipped_is_an_error(tmp_path):
    write(tmp_path / "src" / "test.parquet",
          [{"question_id": "1", "question": "Q?", "answer": "maybe", "image_source": "c", "image": image(1),
            "category": "random"}])
    with pytest.raises(UserError, match="no usable question.*1 answer is not yes/no"):
        import_benchmark(tmp_path / "src", tmp_path / "out")
    assert not any(path.name.endswith(".partial") for path in (tmp_path / "out").iterdir())


def test_benchmark_folder_is_not_a_source(tmp_path, imported):
    _, _, out = imported("pope")
    assert detect_layout(out) is None
    with pytest.raises(UserError, match="already a benchmark folder"):
        import_benchmark(out, tmp_path / "again")
    with pytest.raises(UserError, match="limit"):
        import_benchmark(out, tmp_path / "again", limit=0)


def test_a_tie_is_not_guessed(tmp_path):
    write(tmp_path / "src" / "x.parquet",  # fits both MME and OCRBench, five columns each
          [{"question_id": "1", "image": image(1), "question": "Q?", "answer": "yes", "category": "c",
            "question_type": "t", "dataset": "d"}])
    assert detect_layout(tmp_path / "src") is None
    with pytest.raises(UserError, match="fits mme, ocrbench equally"):
        import_benchmark(tmp_path / "src", tmp_path / "out")
    assert import_benchmark(tmp_path / "src", tmp_path / "out", layout="mme")["num_questions"] == 1
