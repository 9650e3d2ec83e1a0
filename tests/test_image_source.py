import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_random_images

from raylayers.errors import UserError
from raylayers.image_source import SkipCounter, image_refs, iter_image_batches


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
    with pytest.raises(UserError, match="LLaVA json .*bad.json. is not valid JSON"):
        image_refs(tmp_path / "bad.json")


def test_one_rule_for_a_llava_jsons_images_and_one_reading_of_an_image_cell(tmp_path):
    from raylayers.data import Record, image_path
    from raylayers.image_source import image_cell, llava_image_path

    write_random_images(tmp_path / "images", 1)  # only in images/: LRS and training both find it there
    json_path = tmp_path / "data.json"
    assert llava_image_path(json_path, "img_000.png") == tmp_path / "images" / "img_000.png"
    assert image_path(Record("r", "img_000.png", []), json_path, None) == str(tmp_path / "images" / "img_000.png")
    assert llava_image_path(json_path, "x.png", tmp_path / "elsewhere") == tmp_path / "elsewhere" / "x.png"
    assert image_cell({"bytes": b"png", "path": "a.png"}) == b"png"  # an HF struct: its bytes first
    assert image_cell({"bytes": None, "path": "a.png"}, tmp_path) == str(tmp_path / "a.png")
    assert image_cell("a.png") == "a.png" and image_cell(None) is None and image_cell("") is None


def test_check_image_names_what_is_wrong_without_decoding(tmp_path):
    from raylayers.image_source import ImageRef, check_image

    (good,) = write_random_images(tmp_path, 1)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    truncated = good.read_bytes()[:60]
    assert check_image(ImageRef.of("good", good)) is None
    assert check_image(ImageRef.of("bytes", good.read_bytes())) is None
    assert check_image(ImageRef.of("missing", tmp_path / "nope.png")) == "missing"
    assert check_image(ImageRef.of("empty", tmp_path / "empty.png")) == "empty"
    assert check_image(ImageRef.of("text", tmp_path / "text.png")) == "not an image"
    assert check_image(ImageRef.of("truncated", truncated)) == "corrupt"
