import pytest
import torch
from conftest import tiny_family
from PIL import Image

from raylayers.encoders import EncoderLoadError, VisionTower
from raylayers.layers import LayerRangeError

FAMILIES = ["clip", "clip_full", "siglip", "dinov2", "dinov2_registers"]
PREFIX_TOKENS = {"clip": 1, "clip_full": 1, "siglip": 0, "dinov2": 1, "dinov2_registers": 5}


def _images(count=3):
    return [Image.new("RGB", (40 + 3 * i, 36), color=(30 * i, 80, 200)) for i in range(count)]


@pytest.mark.parametrize("family", FAMILIES)
def test_layers_match_hidden_states(family, saved_family):
    tower = VisionTower.from_pretrained(saved_family(family))
    assert tower.num_layers == 4
    pixels = tower.preprocess(_images())
    assert pixels.shape == (3, 3, 32, 32)
    vision = tower.model
    reference = vision(pixel_values=pixels, output_hidden_states=True).hidden_states
    features = tower(pixels, [0, 1, -1, 2], patch_only=False)
    assert list(features) == [0, 1, 4, 2]  # positive numbers, caller's order
    for layer, value in features.items():
        torch.testing.assert_close(value, reference[layer], rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_prefix_tokens_are_dropped_by_model(family, saved_family):
    tower = VisionTower.from_pretrained(saved_family(family))
    pixels = tower.preprocess(_images(2))
    full = tower(pixels, [2], patch_only=False)[2]
    patches = tower(pixels, [2])[2]
    assert patches.shape == (2, 16, 32)  # (32 / 8)^2 patches
    assert full.shape[1] - patches.shape[1] == PREFIX_TOKENS[family]
    torch.testing.assert_close(patches, full[:, PREFIX_TOKENS[family]:])


def test_full_clip_checkpoint_loads_only_the_vision_part(saved_family):
    tower = VisionTower.from_pretrained(saved_family("clip_full"))
    assert type(tower.model).__name__ == "CLIPVisionModel"
    assert not any("text" in name for name, _ in tower.model.named_parameters())


def test_forward_stops_after_the_deepest_selected_layer():
    model, processor = tiny_family("clip", num_layers=6)
    tower = VisionTower(model, processor)
    calls = [0] * 6
    for index, block in enumerate(model.encoder.layers):
        block.register_forward_hook(lambda *_, i=index: calls.__setitem__(i, calls[i] + 1))
    tower(tower.preprocess(_images(1)), [1, 3])
    assert calls == [1, 1, 1, 0, 0, 0]
    tower(tower.preprocess(_images(1)), [0])
    assert calls == [1, 1, 1, 0, 0, 0]  # layer 0 only: no block runs


def test_tower_is_frozen_and_has_no_gradients():
    model, processor = tiny_family("siglip")
    tower = VisionTower(model, processor)
    assert not any(p.requires_grad for p in tower.parameters())
    assert not tower(tower.preprocess(_images(1)), [-1])[4].requires_grad


def test_model_without_a_block_list_falls_back_to_hidden_states():
    model, processor = tiny_family("clip")
    tower = VisionTower(model, processor)
    reference = tower(tower.preprocess(_images(2)), [1, 3])
    tower._blocks = None  # e.g. a custom model whose blocks we cannot find
    fallback = tower(tower.preprocess(_images(2)), [1, 3])
    for layer in (1, 3):
        torch.testing.assert_close(fallback[layer], reference[layer])


def test_out_of_range_layer_names_the_depth(saved_family):
    tower = VisionTower.from_pretrained(saved_family("clip"))
    with pytest.raises(LayerRangeError, match="encoder has 4 layers"):
        tower(tower.preprocess(_images(1)), [5])


def test_missing_encoder_is_one_clear_error(tmp_path):
    with pytest.raises(EncoderLoadError, match="cannot load encoder 'no-such-org/no-such-model'"):
        VisionTower.from_pretrained("no-such-org/no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderLoadError, match="has no config.json"):
        VisionTower.from_pretrained(tmp_path / "empty")
