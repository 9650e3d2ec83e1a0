"""Shared fixtures: tiny vision towers of each family, built from configs (nothing is downloaded)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("RAYLAYERS_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4, image_size=32,
            patch_size=8)


def tiny_family(family: str, num_layers: int = 4):
    """(model, image processor) of a tiny randomly initialised tower of the given family."""
    import transformers as tf

    kw = dict(TINY, num_hidden_layers=num_layers)
    square = {"height": 32, "width": 32}
    if family == "clip":
        return tf.CLIPVisionModel(tf.CLIPVisionConfig(**kw)), tf.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size=square)
    if family == "clip_full":
        config = tf.CLIPConfig(vision_config=kw, text_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=64,
            bos_token_id=1, eos_token_id=3, pad_token_id=0), projection_dim=16)
        return tf.CLIPModel(config), tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=square)
    if family == "siglip":
        return tf.SiglipVisionModel(tf.SiglipVisionConfig(**kw)), tf.SiglipImageProcessor(size=square)
    if family == "dinov2":
        return tf.Dinov2Model(tf.Dinov2Config(**kw)), tf.BitImageProcessor(
            size={"shortest_edge": 32}, crop_size=square)
    if family == "dinov2_registers":
        return tf.Dinov2WithRegistersModel(tf.Dinov2WithRegistersConfig(num_register_tokens=4, **kw)), \
            tf.BitImageProcessor(size={"shortest_edge": 32}, crop_size=square)
    raise ValueError(family)


@pytest.fixture(scope="session")
def saved_family(tmp_path_factory):
    """Save a tiny tower of a family to disk once per session; returns its folder."""
    cache = {}

    def save(family: str) -> str:
        if family not in cache:
            torch.manual_seed(0)
            model, processor = tiny_family(family)
            folder = tmp_path_factory.mktemp(f"enc_{family}")
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
            cache[family] = str(folder)
        return cache[family]

    return save


def write_random_images(folder, count: int, size: int = 32, seed: int = 0) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"img_{index:03d}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def image_folder(tmp_path):
    write_random_images(tmp_path / "images", 12)
    return tmp_path / "images"


@pytest.fixture(scope="session")
def tiny_stack(tmp_path_factory):
    """A tiny world, and a tiny encoder + LM config + tokenizer pretrained on it (one epoch): the offline stack."""
    from raylayers.pretrain import pretrain_encoder
    from raylayers.world import build_world

    root = tmp_path_factory.mktemp("stack")
    build_world(root / "world", seed=5, scale="tiny", progress=False)
    pretrain_encoder(root / "world", root / "encoder", overrides={"epochs": 1},
                     progress=False, log=lambda _: None)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_stack):
    """An untrained (random connector and LM) but real raylayers checkpoint on the tiny stack, saved by the model."""
    from raylayers.config import ModelConfig
    from raylayers.model import LlavaLayers, load_tokenizer

    encoder = tiny_stack / "encoder"
    tokenizer = load_tokenizer(str(encoder / "lm"))
    config = ModelConfig(encoder=str(encoder), lm=str(encoder / "lm"), connector="mlp2x_gelu", layers=[-2])
    model = LlavaLayers.build(config, tokenizer, seed=0)
    return model.save(tiny_stack / "checkpoint" / "model", tokenizer, include_lm=True).parent
