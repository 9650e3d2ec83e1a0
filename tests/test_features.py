"""Image features: the tower's selected layers, from the cache or on the fly, with bad images dropped and counted."""

import pytest
import torch
from conftest import write_random_images

from raylayers.data import Sample


@pytest.fixture
def model(tiny_checkpoint):
    from raylayers.model import LlavaLayers

    return LlavaLayers.load(tiny_checkpoint / "model")[0]


def samples_of(tmp_path):
    images = write_random_images(tmp_path / "images", 2)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    return [Sample("a", [1], [1], str(images[0])), Sample("b", [1], [1], str(tmp_path / "broken.png")),
            Sample("c", [1], [1], str(tmp_path / "gone.png")), Sample("d", [1], [1], None),
            Sample("e", [1], [1], images[1].read_bytes())]


def test_without_a_cache_images_are_checked_not_hashed_and_bad_ones_dropped(model, tmp_path, monkeypatch):
    from raylayers import feature_cache
    from raylayers.features import ImageFeatures, tower_features

    hashed = []
    real_key = feature_cache.image_key
    monkeypatch.setattr(feature_cache, "image_key", lambda source: hashed.append(source) or real_key(source))
    features = ImageFeatures(model)
    kept = features.prepare(samples_of(tmp_path))
    assert [s.id for s in kept] == ["a", "d", "e"]
    assert dict(features.skipped) == {"not an image": 1, "missing": 1}
    assert len(hashed) == 1 and isinstance(hashed[0], bytes)  # only the in-memory image needs a hash for its key
    got = features.get(kept)
    from PIL import Image

    expected = tower_features(model.tower, [Image.open(kept[0].image).convert("RGB")], model.vision_layers)
    assert set(got) == set(model.vision_layers) and got[model.vision_layers[0]].shape[0] == 2
    torch.testing.assert_close(got[model.vision_layers[0]][:1], expected[model.vision_layers[0]])


def test_with_a_cache_the_tower_runs_once_per_image(model, tmp_path, monkeypatch):
    from raylayers.feature_cache import FeatureCache
    from raylayers.features import ImageFeatures

    cache = FeatureCache(tmp_path / "cache", model.tower.fingerprint())
    first = ImageFeatures(model, cache)
    kept = first.prepare(samples_of(tmp_path))
    assert [s.id for s in kept] == ["a", "d", "e"] and dict(first.skipped) == {"not an image": 1, "missing": 1}
    cached = first.get(kept)
    calls = []
    monkeypatch.setattr(type(model.tower), "forward", lambda *args, **kwargs: calls.append(1))
    second = ImageFeatures(model, FeatureCache(tmp_path / "cache", model.tower.fingerprint()))
    again = second.get(second.prepare(samples_of(tmp_path)))
    assert calls == []  # every image was in the cache
    for layer in model.vision_layers:
        torch.testing.assert_close(again[layer], cached[layer])


def test_rows_of_a_benchmark_keep_their_place(model, tmp_path):
    from raylayers.features import ImageFeatures

    (image,) = write_random_images(tmp_path, 1)
    features, errors = ImageFeatures(model).of_sources([str(image), None, str(tmp_path / "gone.png")])
    assert errors == [None, "image missing", "image missing"]
    assert features[model.vision_layers[0]].shape[0] == 1
