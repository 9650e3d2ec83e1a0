"""Recognising a layout from the parquet schemas, and the errors for a folder that cannot be imported as one."""

from __future__ import annotations

import pyarrow as pa
import pytest
from importer_sources import image, png, src_pope, src_textvqa, write

from raylayers.errors import UserError
from raylayers.evaluate.importers import detect_layout, import_benchmark


def test_gqa_files_named_by_config(tmp_path):
    src = tmp_path / "gqa"
    write(src / "testdev_balanced_instructions.parquet",
          [{"id": "q1", "imageId": "n1", "question": "Is it red?", "answer": "no"}])
    write(src / "testdev_balanced_images.parquet", [{"id": "n1", "image": image(30)}])
    write(src / "train_all_images.parquet", [{"id": "n7", "image": image(31)}])  # another config: ignored
    assert detect_layout(src) == "gqa"
    meta = import_benchmark(src, tmp_path / "out")
    assert meta["num_questions"] == 1 and "train_all_images.parquet" not in meta["files"]


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


def test_a_tie_is_not_guessed(tmp_path):
    write(tmp_path / "src" / "x.parquet",  # fits both MME and OCRBench, five columns each
          [{"question_id": "1", "image": image(1), "question": "Q?", "answer": "yes", "category": "c",
            "question_type": "t", "dataset": "d"}])
    assert detect_layout(tmp_path / "src") is None
    with pytest.raises(UserError, match="fits mme, ocrbench equally"):
        import_benchmark(tmp_path / "src", tmp_path / "out")
    assert import_benchmark(tmp_path / "src", tmp_path / "out", layout="mme")["num_questions"] == 1
