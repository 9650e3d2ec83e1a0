"""The command line as a user meets it: every subcommand parses, the pipeline runs, mistakes are one line."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raylayers.cli import build_parser, main

COMMANDS = ["world", "pretrain-encoder", "lrs", "train", "eval", "search", "export", "demo"]  # DESIGN.md, all of them


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: raylayers" in capsys.readouterr().out


def test_parser_knows_exactly_the_documented_commands():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(subparsers.choices) == sorted(COMMANDS)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """world (tiny) -> pretrain-encoder -> lrs, through main(), once for the module."""
    root = tmp_path_factory.mktemp("pipeline")
    assert main(["world", "--out", str(root / "world"), "--scale", "tiny", "--seed", "1"]) == 0
    assert main(["pretrain-encoder", "--world", str(root / "world"), "--out", str(root / "encoder")]) == 0
    assert main(["lrs", "--encoder", str(root / "encoder"), "--images", str(root / "world" / "images"),
                 "--out", str(root / "lrs")]) == 0
    return root


@pytest.mark.slow
def test_pipeline_writes_a_real_checkpoint_and_lrs(pipeline):
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, CLIPModel

    from raylayers.encoders import VisionTower

    encoder = pipeline / "encoder"
    assert isinstance(CLIPModel.from_pretrained(encoder), CLIPModel)
    AutoImageProcessor.from_pretrained(encoder)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    assert tokenizer.decode(tokenizer("How many circles are there? 12", add_special_tokens=False)["input_ids"]) \
        == "How many circles are there? 12"
    lm = AutoConfig.from_pretrained(encoder / "lm")
    assert lm.model_type == "llama" and lm.vocab_size == len(tokenizer)
    tower = VisionTower.from_pretrained(encoder)
    report = json.loads((encoder / "pretrain.json").read_text())
    assert report["steps"] > 0 and 0.0 <= report["retrieval"]["top1"] <= 1.0
    lrs = json.loads((pipeline / "lrs" / "lrs.json").read_text())
    assert lrs["num_layers"] == tower.num_layers
    layers = [layer for group in lrs["groups"] for layer in group["layers"]]
    assert layers == list(range(1, tower.num_layers + 1))
    assert (pipeline / "lrs" / "lrs.png").stat().st_size > 1000


@pytest.mark.slow
def test_lrs_reads_each_source_kind(pipeline, tmp_path):
    world = pipeline / "world"
    for name, source in {"json": world / "stage1.json", "bench": world / "bench" / "count"}.items():
        out = tmp_path / name
        assert main(["lrs", "--encoder", str(pipeline / "encoder"), "--images", str(source), "--out", str(out),
                     "--groups", "2", "--metric", "cka"]) == 0
        data = json.loads((out / "lrs.json").read_text())
        assert data["metric"] == "cka" and len(data["groups"]) == 2 and data["num_images"] >= 4


def _one_line_error(capsys, argv, *fragments):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.mark.slow
def test_bad_input_is_one_clear_line(pipeline, capsys, tmp_path):
    encoder, images = str(pipeline / "encoder"), str(pipeline / "world" / "images")
    out = str(tmp_path / "out")
    _one_line_error(capsys, ["lrs", "--encoder", str(tmp_path / "missing"), "--images", images, "--out", out],
                    "cannot load encoder", "missing")
    _one_line_error(capsys, ["lrs", "--encoder", encoder, "--images", images, "--out", out, "--groups", "0"],
                    "--groups must be at least 1")
    _one_line_error(capsys, ["lrs", "--encoder", encoder, "--images", images, "--out", out, "--groups", "99"],
                    "--groups 99", "4 layers")
    bad = tmp_path / "bad_images"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"")
    (bad / "b.txt").write_text("hello")
    _one_line_error(capsys, ["lrs", "--encoder", encoder, "--images", str(bad), "--out", out],
                    "none of the 2 files")
    _one_line_error(capsys, ["pretrain-encoder", "--world", str(tmp_path), "--out", out], "not a world folder")
    with pytest.raises(SystemExit) as info:
        main(["world", "--out", out, "--scale", "huge"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_skipped_images_are_reported_and_counted(pipeline, capsys, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(pipeline / "world" / "images", mixed)
    (mixed / "corrupt.png").write_bytes(b"\x89PNG broken")
    (mixed / "empty.png").write_bytes(b"")
    assert main(["lrs", "--encoder", str(pipeline / "encoder"), "--images", str(mixed),
                 "--out", str(tmp_path / "out"), "--groups", "2"]) == 0
    captured = capsys.readouterr()
    assert "warning: skipped 2 image(s)" in captured.err
    assert json.loads((tmp_path / "out" / "lrs.json").read_text())["num_skipped"] == 2


@pytest.mark.slow
def test_console_script_demo_runs_at_tiny_scale(tmp_path):
    script = str(Path(sys.executable).parent / "raylayers")  # the venv's console script
    result = subprocess.run([script, "demo", "--scale", "tiny", "--out", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "demo finished" in result.stdout
    assert (tmp_path / "demo" / "lrs" / "lrs.png").exists()
