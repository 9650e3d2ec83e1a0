"""Writing the benchmark folder: limits, unique ids, where image bytes come from, and the errors of an import."""

from __future__ import annotations

import pyarrow as pa
import pytest
from importer_sources import image, png, read_rows, src_pope, write

from raylayers.errors import UserError
from raylayers.evaluate.importers import import_benchmark


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


def test_unknown_layout_lists_the_valid_ones(tmp_path):
    src_pope(tmp_path / "src")
    with pytest.raises(UserError, match="unknown benchmark layout 'vqav2'.*cv_bench, gqa, mmbench"):
        import_benchmark(tmp_path / "src", tmp_path / "out", layout="vqav2")


def test_everything_skipped_is_an_error(tmp_path):
    write(tmp_path / "src" / "test.parquet",
          [{"question_id": "1", "question": "Q?", "answer": "maybe", "image_source": "c", "image": image(1),
            "category": "random"}])
    with pytest.raises(UserError, match="no usable question.*1 answer is not yes/no"):
        import_benchmark(tmp_path / "src", tmp_path / "out")
    assert not any(path.name.endswith(".partial") for path in (tmp_path / "out").iterdir())
