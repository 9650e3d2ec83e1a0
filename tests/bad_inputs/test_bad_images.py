"""Bad images and image sources: lrs, pretrain-encoder, world, and the feature path training uses. Bad files are
skipped and counted with their reason (one warning line, exit 0); a source with nothing usable is one error line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from bad_inputs.bad_inputs_testing import record, write_images, write_records


@pytest.fixture
def tower(saved_family):
    return saved_family("clip")


def lrs(tower, images, out):
    return ["lrs", "--encoder", tower, "--images", images, "--out", out]


def test_lrs_llava_json_that_is_not_utf8(refused, tower, tmp_path):
    (tmp_path / "data.json").write_bytes(b'[{"id": "\xff"}]')
    refused(lrs(tower, tmp_path / "data.json", tmp_path / "out"), "LLaVA json", "data.json", "not UTF-8 text (byte 9)")


def test_lrs_llava_record_whose_image_is_a_number(refused, tower, tmp_path):
    data = write_records(tmp_path / "data.json", [record("a"), record("b7", image=42)])
    refused(lrs(tower, data, tmp_path / "out"), "record b7 in", "data.json", "'image' must be a path string")


def test_lrs_skips_and_counts_a_fifo_instead_of_blocking_on_it(refused, tower, image_folder, tmp_path):
    os.mkfifo(image_folder / "pipe.png")
    line = refused(lrs(tower, image_folder, tmp_path / "out"), "warning: skipped 1 image(s)", "not a regular file",
                   "pipe.png", code=0)
    assert line.startswith("warning:") and (tmp_path / "out" / "lrs.json").is_file()


def test_lrs_counts_a_sub_folder_it_cannot_list_with_its_reason(refused, tower, image_folder, tmp_path, monkeypatch):
    write_images(image_folder / "locked", 2, seed=3)
    listing = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)
    refused(lrs(tower, image_folder, tmp_path / "out"), "1 folder permission denied", "locked/", code=0)


def test_an_image_folder_follows_a_linked_folder_and_a_link_loop_ends(tmp_path):
    from raylayers.image_source import image_refs

    write_images(tmp_path / "elsewhere", 2)
    write_images(tmp_path / "imgs", 1)
    (tmp_path / "imgs" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "imgs" / "loop").symlink_to(tmp_path / "imgs")
    assert [ref.key for ref in image_refs(tmp_path / "imgs")] == [
        "img_000.png", "linked/img_000.png", "linked/img_001.png"]


def test_lrs_says_permission_denied_not_corrupt(refused, tower, image_folder, tmp_path, monkeypatch):
    from PIL import Image

    opening = Image.open

    def open_image(path, *args, **kwargs):
        if str(path).endswith("img_003.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return opening(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", open_image)
    line = refused(lrs(tower, image_folder, tmp_path / "out"), "1 permission denied", "img_003.png", code=0)
    assert "corrupt" not in line


def test_lrs_with_no_usable_image(refused, tower, tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"\x89PNG truncated")
    (tmp_path / "imgs" / "b.png").write_bytes(b"")
    refused(lrs(tower, tmp_path / "imgs", tmp_path / "out"), "none of the 2 files", "1 empty", "1 not an image",
            nothing_new=True)


def test_lrs_encoder_whose_depth_is_a_string(refused, tower, image_folder, tmp_path):
    encoder = shutil.copytree(tower, tmp_path / "encoder")
    config = json.loads((encoder / "config.json").read_text())
    config["num_hidden_layers"] = "four"
    (encoder / "config.json").write_text(json.dumps(config))
    refused(lrs(encoder, image_folder, tmp_path / "out"), "encoder", "num_hidden_layers", nothing_new=True)


def test_lrs_encoder_folder_without_a_config(refused, image_folder, tmp_path):
    (tmp_path / "encoder").mkdir()
    refused(lrs(tmp_path / "encoder", image_folder, tmp_path / "out"), "has no config.json")


def test_lrs_encoder_weights_with_a_bad_header(refused, tower, image_folder, tmp_path):
    encoder = shutil.copytree(tower, tmp_path / "encoder")
    weights = encoder / "model.safetensors"
    weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])
    refused(lrs(encoder, image_folder, tmp_path / "out"), "cannot load encoder weights", "encoder")


def test_lrs_groups_that_are_not_a_number(refused, tower, image_folder, tmp_path):
    refused(lrs(tower, image_folder, tmp_path / "out") + ["--groups", "three"], "--groups", "'three'")


def test_training_features_skip_a_fifo_and_a_missing_file_without_hashing_them(tmp_path):
    from raylayers.data import Sample
    from raylayers.feature_cache import image_key
    from raylayers.features import ImageFeatures

    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(OSError, match="not a regular file"):
        image_key(tmp_path / "pipe.png")

    class Cache:
        def missing(self, layers, keys):
            return keys

    features = ImageFeatures(SimpleNamespace(vision_layers=[]), Cache())
    kept = features.prepare([Sample("a", [1], [1], str(tmp_path / "pipe.png")),
                             Sample("b", [1], [1], str(tmp_path / "gone.png")), Sample("c", [1], [1], None)])
    assert [s.id for s in kept] == ["c"] and features.skipped == {"not a regular file": 1, "missing": 1}


def test_pil_decompression_bomb_warning_is_silenced_and_a_bomb_counted_too_large(tmp_path):
    write_images(tmp_path, 2, size=16)
    script = ("import warnings, PIL.Image as I; import raylayers.image_source as s; I.MAX_IMAGE_PIXELS = 200\n"
              f"print(s.open_image(s.ImageRef.of('a', '{tmp_path / 'img_000.png'}'))[1])\n"
              "I.MAX_IMAGE_PIXELS = 100\n"
              f"print(s.open_image(s.ImageRef.of('b', '{tmp_path / 'img_001.png'}'))[1])\n")
    done = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["None", "too", "large"] and done.stderr == "", done.stderr


# ================================================================================================ pretrain-encoder
def pretrain(world, out, steps: int = 1):
    return ["pretrain-encoder", "--world", world, "--out", out, "--max-steps", steps]


def test_pretrain_skips_and_counts_a_truncated_image(refused, world, tmp_path):
    name = json.loads((world / "stage1.json").read_text())[0]["image"]
    image = world / name
    image.write_bytes(image.read_bytes()[:200])
    line = refused(pretrain(world, tmp_path / "encoder"), "warning: skipped 1 image(s): 1 corrupt", name, code=0,
                   kept=world)
    assert line and json.loads((tmp_path / "encoder" / "pretrain.json").read_text())["skipped_images"] == {
        "corrupt": 1}


def test_pretrain_with_no_usable_image(refused, world, tmp_path):
    shutil.rmtree(world / "images")
    refused(pretrain(world, tmp_path / "encoder"), "loading train images: none of the 48 images", "48 missing",
            kept=world)


def test_pretrain_world_json_not_utf8(refused, world, tmp_path):
    (world / "world.json").write_bytes(b'{"scale": "\xff"}')
    refused(pretrain(world, tmp_path / "encoder"), "world.json", "not UTF-8 text", kept=world)


def test_pretrain_without_a_world_json(refused, world, tmp_path):
    (world / "world.json").unlink()
    refused(pretrain(world, tmp_path / "encoder"), "is not a world folder (no world.json)")


def test_pretrain_world_json_without_an_image_size(refused, world, tmp_path):
    (world / "world.json").write_text(json.dumps({"scale": "tiny"}))
    refused(pretrain(world, tmp_path / "encoder"), "world.json", "'image_size' must be a positive integer")


def test_pretrain_record_without_a_caption(refused, world, tmp_path):
    records = json.loads((world / "stage1.json").read_text())
    records[3]["conversations"] = records[3]["conversations"][:1]
    (world / "stage1.json").write_text(json.dumps(records))
    refused(pretrain(world, tmp_path / "encoder"), f"record {records[3]['id']}", "stage1.json", "no gpt caption",
            kept=world)


def test_pretrain_stage1_that_is_not_json(refused, world, tmp_path):
    (world / "stage1.json").write_text("[{")
    refused(pretrain(world, tmp_path / "encoder"), "stage1.json", "not valid JSON", kept=world)


def test_pretrain_world_with_a_world_json_not_utf8(refused, world, tmp_path):
    (world / "world.json").write_bytes(b'{"scale": "\xff"}')
    refused(["pretrain-world", "--world", world, "--out", tmp_path / "bundle"], "world.json", "not UTF-8 text",
            kept=world, nothing_new=True)


# ================================================================================================ world
def test_world_out_that_is_a_file(refused, tmp_path):
    (tmp_path / "taken").write_text("mine")
    refused(["world", "--out", tmp_path / "taken", "--scale", "tiny"], "taken", "is not a folder")


def test_world_with_a_negative_seed(refused, tmp_path):
    refused(["world", "--out", tmp_path / "w", "--seed", "-1"], "seed", "-1", nothing_new=True)


def test_world_with_an_unknown_scale(refused, tmp_path):
    refused(["world", "--out", tmp_path / "w", "--scale", "huge"], "--scale", "invalid choice: 'huge'")
