import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylayers.errors import UserError
from raylayers.image_source import SkipCounter, image_refs, iter_image_batches

from conftest import write_random_images


def test_folder_source_lists_files_in_order(tmp_path):
    write_random_images(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / ".hidden.png").write_bytes(b"x")
    refs = image_refs(tmp_path / "imgs")
    assert [r.key for r in refs] == ["img_000.png", "img_001.png", "img_002.png"]


def test_llava_json_source_resolves_and_deduplicates(tmp_path):
    write_random_images(tmp_path / "images", 2)
    records = [{"id": "a", "image": "img_000.png", "conversations": []},
               {"id": "b", "image": "images/img_001.png", "conversations": []},
               {"id": "c", "image": "img_000.png", "conversations": []},
               {"id": "d", "conversations": []}]  # text-only
    (tmp_path / "data.json").write_text(json.dumps(records))
    refs = image_refs(tmp_path / "data.json")
    assert [r.path.exists() for r in refs] == [True, True]
    assert len(refs) == 2


def test_benchmark_folder_source_reads_paths_and_bytes(tmp_path):
    paths = write_random_images(tmp_path / "bench" / "images", 2)
    table = pa.table({"question_id": ["1", "2", "3"], "image": ["images/img_000.png", "images/img_001.png",
                                                               "images/img_000.png"]})
    pq.write_table(table, tmp_path / "bench" / "questions.parquet")
    assert len(image_refs(tmp_path / "bench")) == 2
    table = pa.table({"question_id": ["1"], "image": [paths[0].read_bytes()]})
    pq.write_table(table, tmp_path / "bench" / "questions.parquet")
    refs = image_refs(tmp_path / "bench")
    assert refs[0].data is not None
    batches = list(iter_image_batches(refs, 4))
    assert len(batches) == 1 and batches[0][0].size == (32, 32)


def test_batches_skip_bad_files_and_merge_a_short_tail(tmp_path):
    write_random_images(tmp_path / "imgs", 9)
    (tmp_path / "imgs" / "zzz_bad.png").write_bytes(b"not a png")
    skipped = SkipCounter()
    batches = list(iter_image_batches(image_refs(tmp_path / "imgs"), 4, skipped=skipped, min_last_batch=4))
    assert [len(b) for b in batches] == [4, 5]  # 9 images: the tail of 1 joins the previous batch
    assert skipped.total == 1 and skipped.reasons["not an image"] == 1
    assert [len(b) for b in iter_image_batches(image_refs(tmp_path / "imgs"), 4, max_images=6)] == [4, 2]


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        image_refs(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UserError, match="not a LLaVA .json"):
        image_refs(tmp_path / "x.txt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read LLaVA json"):
        image_refs(tmp_path / "bad.json")
