import itertools
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import tiny_family, write_random_images
from hypothesis import given, settings
from hypothesis import strategies as st

from raylayers.encoders import VisionTower
from raylayers.errors import UserError
from raylayers.lrs import (
    CKAAccumulator,
    CosineAccumulator,
    compute_lrs,
    group_names,
    lrs_groups,
    optimal_segmentation,
    parse_groups,
    representative_layer,
    write_lrs,
)


def planted_tower(blocks: list[list[int]], seed: int = 0) -> VisionTower:
    """A CLIP whose layers form blocks of identical outputs: every block but the first of a group adds nothing.

    A CLIP block is x + attn(ln(x)) then x + mlp(ln(x)); with out_proj and fc2 zeroed it is the identity.
    """
    torch.manual_seed(seed)
    depth = max(max(block) for block in blocks)
    model, processor = tiny_family("clip", num_layers=depth)
    for block in blocks:
        for layer in block[1:]:
            module = model.encoder.layers[layer - 1]
            for linear in (module.self_attn.out_proj, module.mlp.fc2):
                torch.nn.init.zeros_(linear.weight)
                torch.nn.init.zeros_(linear.bias)
    for block in blocks:  # make the block-starting layers change the stream a lot
        module = model.encoder.layers[block[0] - 1]
        torch.nn.init.normal_(module.mlp.fc2.weight, std=1.0)
    return VisionTower(model, processor, name="planted")


PLANTED = [
    [[1, 2, 3], [4, 5], [6, 7, 8]],
    [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11, 12]],
    [[1, 2], [3, 4, 5, 6], [7], [8, 9, 10]],
]


@pytest.mark.parametrize("metric", ["cosine", "cka"])
@pytest.mark.parametrize("blocks", PLANTED, ids=["3-blocks", "2-blocks", "4-blocks"])
def test_planted_blocks_are_recovered(blocks, metric, image_folder):
    tower = planted_tower(blocks)
    given_k = compute_lrs(tower, image_folder, metric=metric, num_groups=len(blocks), batch_size=5,
                          progress=False)
    assert [group.layers for group in given_k.groups] == blocks
    auto = compute_lrs(tower, image_folder, metric=metric, num_groups="auto", batch_size=5, progress=False)
    assert [group.layers for group in auto.groups] == blocks
    assert auto.grouping["num_groups"] == len(blocks)
    for group in auto.groups:  # identical layers tie; the deeper one represents them
        assert group.representative == group.layers[-1]


def test_three_groups_are_named_shallow_middle_deep():
    assert group_names(3) == ["shallow", "middle", "deep"]
    assert group_names(2) == ["shallow", "deep"]
    assert group_names(4) == ["shallow", "middle_1", "middle_2", "deep"]


def _brute_force(similarity, k):
    size = similarity.shape[0]
    best = np.inf
    for cuts in itertools.combinations(range(1, size), k - 1):
        bounds = [0, *cuts, size]
        cost = 0.0
        for a, b in zip(bounds, bounds[1:]):
            block = similarity[a:b, a:b]
            cost += (b - a) - block.sum() / (b - a)
        best = min(best, cost)
    return best


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 8), st.integers(1, 8), st.integers(0, 10_000))
def test_dynamic_programme_is_exactly_optimal(size, k, seed):
    k = min(k, size)
    points = np.random.default_rng(seed).normal(size=(size, 5))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    similarity = points @ points.T
    segments, cost = optimal_segmentation(similarity, k)
    assert len(segments) == k
    assert segments[0][0] == 0 and segments[-1][1] == size - 1
    assert all(b[0] == a[1] + 1 for a, b in zip(segments, segments[1:]))  # contiguous, covering
    assert cost == pytest.approx(_brute_force(similarity, k), abs=1e-9)


def test_groups_cover_all_layers_in_order():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(12, 6))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    groups, how = lrs_groups(points @ points.T, "auto")
    assert [layer for group in groups for layer in group.layers] == list(range(1, 13))
    assert all(group.representative in group.layers for group in groups)
    assert how["criterion"] == "silhouette"


def test_representative_is_the_medoid():
    similarity = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.8], [0.1, 0.8, 1.0]])
    assert representative_layer(similarity, [1, 2, 3]) == 2


def test_streaming_cosine_equals_one_shot():
    torch.manual_seed(0)
    features = [torch.randn(10, 7, 16) for _ in range(3)]
    streamed = CosineAccumulator(3)
    for start in range(0, 10, 3):
        streamed.update([f[start:start + 3] for f in features])
    units = [torch.nn.functional.normalize(f, dim=-1) for f in features]
    expected = np.array([[float((a * b).sum(-1).mean()) for b in units] for a in units])
    np.testing.assert_allclose(streamed.result(), expected, atol=1e-6)
    np.testing.assert_allclose(np.diag(streamed.result()), 1.0, atol=1e-6)


def test_minibatch_cka_matches_full_batch_unbiased_cka():
    torch.manual_seed(0)
    base = torch.randn(40, 4, 8)
    features = [base, base * 3.0 + 0.1 * torch.randn_like(base), torch.randn(40, 4, 8)]
    accumulator = CKAAccumulator(3)
    accumulator.update(features)  # one batch = full-batch unbiased CKA
    cka = accumulator.result()
    assert cka[0, 0] == pytest.approx(1.0)
    assert cka[0, 1] > 0.95  # scaled copy plus a little noise
    assert abs(cka[0, 2]) < 0.2  # independent
    with pytest.raises(ValueError, match="at least 4 images"):
        accumulator.update([f[:3] for f in features])


def test_outputs_follow_the_contract(tmp_path, image_folder):
    tower = planted_tower(PLANTED[0])
    result = compute_lrs(tower, image_folder, num_groups=3, progress=False)
    paths = write_lrs(result, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    for key in ("encoder", "num_layers", "metric", "num_images", "matrix", "groups"):
        assert key in data
    assert data["num_layers"] == 8 and data["num_images"] == 12 and data["metric"] == "cosine"
    assert np.array(data["matrix"]).shape == (8, 8)
    assert [g["name"] for g in data["groups"]] == ["shallow", "middle", "deep"]
    assert set(data["groups"][0]) == {"name", "layers", "representative"}
    table = pq.read_table(paths["parquet"]).to_pydict()
    assert len(table["similarity"]) == 64
    assert min(table["layer_i"]) == 1 and max(table["layer_j"]) == 8
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_bad_images_are_skipped_and_counted(tmp_path):
    folder = tmp_path / "mixed"
    write_random_images(folder, 5)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes((folder / "img_000.png").read_bytes()[:60])
    result = compute_lrs(planted_tower(PLANTED[0]), folder, num_groups=2, progress=False)
    assert result.num_images == 5
    assert sum(result.skipped.values()) == 3
    assert "skipped 3 image(s)" in result.skip_summary


def test_all_bad_images_is_an_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"junk")
    (folder / "b.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="none of the 2 files"):
        compute_lrs(planted_tower(PLANTED[0]), folder, progress=False)


def test_groups_flag_is_checked():
    assert parse_groups("auto") == "auto" and parse_groups("3") == 3
    for bad in ("0", "-1", "x"):
        with pytest.raises(UserError, match="--groups"):
            parse_groups(bad)
    with pytest.raises(UserError, match="larger than the encoder's depth"):
        compute_lrs(planted_tower(PLANTED[0]), ".", num_groups=9, progress=False)


def test_auto_does_not_cut_a_smooth_drift_into_many_groups():
    # layer l is the unit vector at angle l * 10 degrees: similarity falls smoothly with distance, no blocks
    angles = np.radians(np.arange(12) * 10.0)
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    groups, how = lrs_groups(points @ points.T, "auto")
    assert len(groups) <= 3
    assert set(how["scores"]) == {str(k) for k in range(2, 11)}


def test_auto_finds_noisy_paper_like_groups():
    # CLIP-L-like: 24 layers in blocks 1-12, 13-20, 21-24 (the paper), each layer its block's direction plus noise
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(3, 64))
    block = [0] * 12 + [1] * 8 + [2] * 4
    points = np.stack([3 * directions[b] + 0.8 * rng.normal(size=64) for b in block])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    groups, _ = lrs_groups(points @ points.T, "auto")
    assert [(g.layers[0], g.layers[-1]) for g in groups] == [(1, 12), (13, 20), (21, 24)]
    assert [g.name for g in groups] == ["shallow", "middle", "deep"]
