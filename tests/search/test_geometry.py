"""The geometry searcher: layers as points from the LRS, evidence about a layer moves belief about its neighbours,
no repeats, and with trials running at once no configuration proposed twice (no Ray here: the searcher driven by
hand, as Tune drives it; the Tune run with concurrency 2 is in test_tuner)."""

import math

import numpy as np
import pytest

from raylayers.config.search import SpaceSection
from raylayers.lrs import load_lrs
from raylayers.search import geometry
from raylayers.search.replay import PAPER_GROUPS, PAPER_NUM_LAYERS, paper_block_similarity, write_lrs
from raylayers.search.searcher import LayerSearcher
from raylayers.search.space import build_layer_space, seeded_candidates


@pytest.fixture(scope="module")
def paper_space(tmp_path_factory):
    """CLIP-L/336's 24 layers in the paper's groups with the benchmark's block matrix; single layers only."""
    lrs = load_lrs(write_lrs(tmp_path_factory.mktemp("lrs") / "lrs.json", PAPER_GROUPS, PAPER_NUM_LAYERS,
                             paper_block_similarity))
    return build_layer_space(SpaceSection(num_layers=[1], single_connectors=["linear"]), lrs)


def searcher_of(layer_space, seed, sampler="geometry"):
    candidates = layer_space.candidates()
    return LayerSearcher(layer_space, {}, seeded_candidates(layer_space, True), 2, 0.1, sampler=sampler, seed=seed,
                         space_size=len(candidates), candidates=candidates)


def trials_until(searcher, score, good, budget=24) -> int:
    """Drive the searcher one trial at a time, as Tune does; the number of trials until a `good` layer is tried."""
    for number in range(1, budget + 1):
        config = searcher.suggest(f"t{number}")
        layer = config["layers"][0]
        if layer in good:
            return number
        searcher.on_trial_complete(f"t{number}", {"score": score(layer), "final": True})
    return budget + 1


def test_layer_points_put_lrs_neighbours_close_and_groups_apart(paper_space):
    points = geometry.layer_points(paper_space)
    assert len(points) == 24 and all(len(p) >= 2 for p in points.values())

    def distance(a, b):
        return float(np.linalg.norm(points[a] - points[b]))

    assert distance(17, 18) < distance(17, 20) < distance(12, 13)  # 12 | 13: the shallow / middle boundary
    assert distance(5, 6) < distance(5, 9)


def test_geometry_finds_the_good_neighbourhood_in_fewer_trials_than_categorical_layers(paper_space, monkeypatch):
    """Only layers 8-10 score well (a bump at 9, width 3); the priors start at 23, 3 and 18. Same seeds, the same
    searcher: with layer points it follows the slope from layer 3; with one-hot points and no position within a
    group (every layer its own category, as TPE sees them) it cannot."""
    def score(layer):
        return 0.3 + 0.2 * math.exp(-(layer - 9) ** 2 / (2 * 3.0 ** 2))

    good = {8, 9, 10}
    seeds = range(5)
    with_geometry = [trials_until(searcher_of(paper_space, seed), score, good) for seed in seeds]
    one_hot = {layer: np.eye(24)[layer - 1] for layer in range(1, 25)}
    monkeypatch.setattr(geometry, "layer_points", lambda layer_space: one_hot)
    monkeypatch.setattr(geometry, "TRENDS", (0.0,))  # no position within a group either
    categorical = [trials_until(searcher_of(paper_space, seed), score, good) for seed in seeds]
    assert sum(with_geometry) < sum(categorical), (with_geometry, categorical)
    # never worse on a seed: [8, 9, 11, 8, 9] vs [18, 11, 11, 12, 18]
    assert all(g <= c for g, c in zip(with_geometry, categorical)), (with_geometry, categorical)


def test_pending_configurations_are_never_proposed_again_and_no_random_flood(paper_space):
    """Trials running at once (Tune asks before the others end): every proposal differs, the first ones are the
    queued priors and the prior draws, and after them every proposal is the model's (no random start-up trials)."""
    searcher = searcher_of(paper_space, seed=0)
    queued = [c.key for c in seeded_candidates(paper_space, True)]
    first = [searcher.suggest(f"t{n}")["key"] for n in range(4)]  # four running at once
    assert len(set(first)) == 4 and first[:len(queued)] == queued
    keys = list(first)
    for n in range(4, 24):  # one ends, one starts: three stay running
        searcher.on_trial_complete(f"t{n - 4}", {"score": 0.3 + 0.01 * (n % 5), "final": True})
        keys.append(searcher.suggest(f"t{n}")["key"])
    assert len(keys) == len(set(keys)) == 24
    assert searcher.counters()["repeats_answered"] == 0
    assert searcher.proposals == {"queued": len(queued), "prior": 2, "model": 24 - len(queued) - 2, "sampler": 0}


def test_a_pruned_trial_counts_at_its_rung_score_extrapolated_by_the_completed_ones(paper_space):
    searcher = searcher_of(paper_space, seed=0)
    for number, (final, at_rung, pruned) in enumerate(((0.40, 0.20, False), (0.30, 0.15, False),
                                                       (None, 0.10, True))):
        trial_id = f"t{number}"
        key = searcher.suggest(trial_id)["key"]
        searcher.on_trial_result(trial_id, {"score": at_rung, "global_step": 1000, "training_iteration": 1})
        result = {"score": at_rung, "global_step": 1000} if pruned else {"score": final, "final": True}
        searcher.on_trial_complete(trial_id, result)
    observed = searcher.observations()
    assert observed[key] == pytest.approx(0.10 * 2.0)  # the median ratio final / rung score is 2
    assert searcher.known[key][0] == "pruned"


def test_a_restored_geometry_searcher_goes_on_where_the_saved_one_would(paper_space, tmp_path):
    """Resume: the saved state (what is known, the curves, the draws left) gives the restored searcher the same next
    proposal as the one that was saved, and it proposes nothing measured before."""
    def score(layer):
        return 0.3 + 0.01 * layer

    searcher = searcher_of(paper_space, seed=1)
    for number in range(7):
        layer = searcher.suggest(f"t{number}")["layers"][0]
        searcher.on_trial_complete(f"t{number}", {"score": score(layer), "final": True})
    searcher.save(str(tmp_path / "state.pkl"))
    fresh = searcher_of(paper_space, seed=1)
    fresh.restore(str(tmp_path / "state.pkl"))
    assert fresh.known == searcher.known and len(fresh.known) == 7
    following = fresh.suggest("t7")["key"]
    assert following == searcher.suggest("t7")["key"] and following not in searcher.known
