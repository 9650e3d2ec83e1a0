"""Corrupt or foreign checkpoints in `eval` and `export`: one line naming the file, nothing written."""

from __future__ import annotations

import json
import shutil

import pytest

TRUNCATE = "truncate"


def damage(model, part: str, how: str) -> None:
    path = model / part
    if how == TRUNCATE:
        path.write_bytes(path.read_bytes()[:max(40, path.stat().st_size // 3)])
    elif how == "header":
        path.write_bytes(b"\xff" * 8 + path.read_bytes()[8:])
    else:  # a JSON change: how = '{"key": value}' merged into the metadata
        meta = json.loads(path.read_text())
        for key, value in json.loads(how).items():
            if value is None:
                meta.pop(key)
            else:
                meta[key] = {**meta[key], **value} if isinstance(value, dict) else value
        path.write_text(json.dumps(meta))


CASES = [
    ("raylayers_model.json", TRUNCATE, ["raylayers_model.json", "is not valid JSON"]),
    ("connector.safetensors", "header", ["connector.safetensors", "Error while deserializing header"]),
    ("connector.safetensors", TRUNCATE, ["connector.safetensors", "cannot read the weights"]),
    ("lm/model.safetensors", TRUNCATE, ["cannot load the LM", "lm"]),
    ("raylayers_model.json", '{"lm_source": null}', ["raylayers_model.json", "lacks 'model' or 'lm_source'"]),
    ("raylayers_model.json", '{"model": {"layers": "x"}}', ["'layers' in checkpoint metadata", "valid list"]),
    ("raylayers_model.json", '{"model": {"connector": "linear"}}',
     ["connector.safetensors", "does not fit the linear"]),
]


@pytest.fixture
def checkpoint(tiny_checkpoint, tmp_path):
    return shutil.copytree(tiny_checkpoint, tmp_path / "run")


@pytest.mark.parametrize("part, how, says", CASES, ids=[f"{p}-{h[:12]}" for p, h, _ in CASES])
def test_eval_of_a_damaged_checkpoint(refused, checkpoint, tiny_stack, tmp_path, part, how, says):
    damage(checkpoint / "model", part, how)
    refused(["eval", "--checkpoint", checkpoint, "--bench", tiny_stack / "world" / "bench" / "count", "--out",
             tmp_path / "eval", "--limit", "2"], *says, nothing_new=True)


@pytest.mark.parametrize("part, how, says", CASES[:5], ids=[f"{p}-{h[:12]}" for p, h, _ in CASES[:5]])
def test_export_of_a_damaged_checkpoint(refused, checkpoint, tmp_path, part, how, says):
    damage(checkpoint / "model", part, how)
    refused(["export", "--checkpoint", checkpoint / "model", "--out", tmp_path / "hf"], *says, nothing_new=True)


def test_eval_of_a_folder_that_is_no_checkpoint(refused, tiny_stack, tmp_path):
    (tmp_path / "empty").mkdir()
    refused(["eval", "--checkpoint", tmp_path / "empty", "--bench", tiny_stack / "world", "--out", tmp_path / "e"],
            "is not a raylayers checkpoint", nothing_new=True)


def test_export_of_a_connector_the_hf_format_cannot_express(refused, tiny_stack, tmp_path):
    from raylayers.config import ModelConfig
    from raylayers.model import LlavaLayers, load_tokenizer

    encoder = tiny_stack / "encoder"
    tokenizer = load_tokenizer(str(encoder / "lm"))
    config = ModelConfig(encoder=str(encoder), lm=str(encoder / "lm"), connector="linear", layers=[-2])
    model = LlavaLayers.build(config, tokenizer).save(tmp_path / "run" / "model", tokenizer)
    refused(["export", "--checkpoint", model, "--out", tmp_path / "hf"], "cannot export", "to HF", nothing_new=True)
