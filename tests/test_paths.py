"""A user's paths mean the folder the user started in, wherever the program later runs (raylayers/paths.py)."""

import os
from pathlib import Path

import pytest

from raylayers.cli import build_parser
from raylayers.config import TrainConfig, load_config
from raylayers.paths import resolve_bench, resolve_local, resolve_model, resolve_recipe
from raylayers.search.space import load_search_config


@pytest.fixture
def started_in(tmp_path, monkeypatch):
    """The user's folder: the current directory while the test reads paths."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    return home


def test_local_paths_become_absolute_and_uris_stay(started_in):
    assert resolve_local("runs/demo") == str(started_in / "runs" / "demo")
    assert resolve_local("../data/x.json") == str(started_in.parent / "data" / "x.json")
    assert resolve_local("~/x") == str(Path.home() / "x")
    assert resolve_local("/abs/./x") == "/abs/x"
    for uri in ("s3://bucket/prefix", "gs://b/p", "file:///tmp/x"):
        assert resolve_local(uri) == uri
    assert resolve_local(None) is None and resolve_local("") == ""


def test_model_sources_keep_hub_ids_unless_a_local_folder_has_that_name(started_in):
    assert resolve_model("openai/clip-vit-large-patch14-336") == "openai/clip-vit-large-patch14-336"
    assert resolve_model("gpt2") == "gpt2"
    assert resolve_model("runs/demo/encoder") == str(started_in / "runs/demo/encoder")  # not a hub id's shape
    assert resolve_model("./encoder") == str(started_in / "encoder")
    (started_in / "org" / "model").mkdir(parents=True)
    assert resolve_model("org/model") == str(started_in / "org" / "model")  # on disk: the local folder wins


def test_benchmark_lists_resolve_paths_and_keep_world_task_names(started_in):
    (started_in / "pope").mkdir()
    spec = resolve_bench("count, world,data/bench/mme,pope")
    assert spec.split(",") == ["count", "world", str(started_in / "data/bench/mme"), str(started_in / "pope")]
    assert resolve_recipe("demo") == "demo" and resolve_recipe("my.yaml") == str(started_in / "my.yaml")
    assert resolve_recipe("recipes/x") == str(started_in / "recipes/x")


def _write_recipe(folder: Path) -> Path:
    recipe = folder / "recipe.yaml"
    recipe.write_text("model: {encoder: enc, lm: enc/lm}\n"  # `enc` exists below, so it is a local folder
                      "data: {stage1: world/stage1.json, stage2: world/stage2.json, val: world/val.json}\n"
                      "deepspeed: {config: ds.json}\n"
                      "resources: {storage_path: 's3://bucket/runs'}\n")
    (folder / "enc" / "lm").mkdir(parents=True)
    return recipe


def test_a_train_config_keeps_pointing_at_the_users_files_after_a_change_of_directory(started_in, tmp_path):
    recipe = _write_recipe(started_in)
    config = load_config(TrainConfig, "recipe.yaml", ["cache.dir=cache", "model.lrs=lrs/lrs.json"])
    os.chdir(tmp_path)  # where a Tune trial or a Train worker would run
    assert config.data.stage1 == str(started_in / "world" / "stage1.json")
    assert config.data.val == str(started_in / "world" / "val.json")
    assert config.model.encoder == str(started_in / "enc") and config.model.lm == str(started_in / "enc" / "lm")
    assert config.cache.dir == str(started_in / "cache") and config.model.lrs == str(started_in / "lrs/lrs.json")
    assert config.deepspeed.config == str(started_in / "ds.json")
    assert config.resources.storage_path == "s3://bucket/runs"
    assert config.data.image_folder is None
    assert TrainConfig.model_validate(config.model_dump()) == config  # validating again, anywhere, changes nothing
    assert recipe.is_file()


def test_a_search_space_and_its_base_overrides_resolve_in_the_users_folder(started_in, tmp_path):
    from raylayers.search.tuner import base_train_config

    _write_recipe(started_in)
    space = started_in / "space.yaml"
    space.write_text("base: {config: recipe.yaml, set: {cache.dir: runs/cache, data.stage2: other.json}}\n"
                     "lrs: {file: runs/lrs/lrs.json, images: images}\n"
                     "objective: {bench: 'runs/world/bench,count'}\n"
                     "budget: {storage_path: shared/search}\n")
    config = load_search_config("space.yaml", ["objective.limit=3", "base.set.data.val=v.json"])
    base = base_train_config(config)
    os.chdir(tmp_path)
    assert config.base.config == str(started_in / "recipe.yaml")
    assert config.lrs.file == str(started_in / "runs/lrs/lrs.json") and config.lrs.images == str(
        started_in / "images")
    assert config.objective.bench == f"{started_in / 'runs/world/bench'},count"
    assert config.budget.storage_path == str(started_in / "shared/search")
    assert base.cache.dir == str(started_in / "runs/cache")
    assert base.data.stage2 == str(started_in / "other.json") and base.data.val == str(started_in / "v.json")
    assert base.data.stage1 == str(started_in / "world/stage1.json")


def test_command_line_paths_resolve_when_parsed(started_in):
    parser = build_parser()
    args = parser.parse_args(["search", "--space", "s.yaml", "--out", "runs/s", "--objective", "table:t.parquet"])
    assert (args.space, args.out) == (str(started_in / "s.yaml"), str(started_in / "runs/s"))
    assert args.objective == f"table:{started_in / 't.parquet'}"
    assert parser.parse_args(["demo"]).out == str(started_in / "runs" / "demo")  # the default too
    args = parser.parse_args(["eval", "--checkpoint", "ck", "--bench", "count,b/x", "--out", "e"])
    assert args.checkpoint == str(started_in / "ck") and args.bench == f"count,{started_in / 'b/x'}"
    args = parser.parse_args(["lrs", "--encoder", "openai/clip-vit-base-patch32", "--images", "imgs", "--out", "o"])
    assert args.encoder == "openai/clip-vit-base-patch32" and args.images == str(started_in / "imgs")
    assert parser.parse_args(["train", "--config", "demo", "--out", "o"]).config == "demo"
