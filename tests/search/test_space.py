"""Search space YAML: every shipped file loads, errors name the key, the LRS priors follow the documented rule."""

import random
from collections import Counter
from pathlib import Path

import pytest

from raylayers.errors import UserError
from raylayers.lrs import load_lrs
from raylayers.search.replay import write_lrs
from raylayers.search.space import (
    build_layer_space,
    load_search_config,
    prior_sample,
    seeded_candidates,
)

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "search_spaces").glob("*.yaml"))


def test_every_shipped_space_loads_and_says_how_to_run_it():
    names = {p.name for p in SHIPPED}
    assert {"demo.yaml", "paper_single_layer.yaml", "paper_fusion.yaml", "lrs_guided.yaml"} <= names
    for path in SHIPPED:
        config = load_search_config(path)
        assert "raylayers search --space search_spaces/" + path.name in path.read_text().split("\n\n")[0]
        assert config.budget.trials >= 1


@pytest.mark.parametrize("text, message", [
    ("space: {nmu_layers: [1]}", "unknown key 'space.nmu_layers'"),
    ("space: {fusion_connectors: [concat, densest]}", "space.fusion_connectors: unknown connector 'densest'"),
    ("space: {single_connectors: [concat]}", "'concat' is a fusion connector"),
    ("space: {hyperparameters: {stage2.learning_rat: {uniform: [0.1, 0.2]}}}", "'stage2.learning_rat' is not a"),
    ("space: {hyperparameters: {stage2.learning_rate: {uniform: [0.2, 0.1]}}}", "low < high"),
    ("budget: {searcher: bayes}", "'budget.searcher' in"),
    ("budget: {searcher: bayes}", "must be one of 'tpe', 'geometry', 'random' or 'grid', got 'bayes'"),
    ("budget: {trials: 0}", "'budget.trials' in"),
    ("budget: {trials: 0}", "input should be greater than 0, got 0"),
    ("objective: {weights: {ocrr: 2}}", "objective.weights.ocrr"),
    ("budget: {searcher: grid}\nspace: {hyperparameters: {stage2.learning_rate: {log_uniform: [1.0e-5, 1.0e-3]}}}",
     "grid search needs a choice list"),
])
def test_bad_spaces_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message.replace("(", "\\(").replace(")", "\\)")) as err:
        load_search_config(path)
    assert str(path) in str(err.value)


def space_of(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    config = load_search_config(path)
    return build_layer_space(config.space, load_lrs(write_lrs(tmp_path / "lrs.json")))


def test_one_layer_per_group_and_the_seeded_trials(tmp_path):
    space = space_of(tmp_path, "space: {num_layers: [1, 3], fusion_connectors: [concat, dense_sci]}")
    sets = space.layer_sets(3)
    assert len(sets) == 8 and all(len({space.group_of(x) for x in s}) == 3 for s in sets)
    assert len(space.candidates()) == 6 + 8 * 2
    seeds = [c.key for c in seeded_candidates(space, baseline=True)]
    # the penultimate layer, then the representatives alone and their concat (5 of 6 is both: tried once)
    assert seeds == ["layers=5|connector=mlp2x_gelu", "layers=1|connector=mlp2x_gelu", "layers=4|connector=mlp2x_gelu",
                     "layers=1,4,5|connector=concat"]


def test_baseline_is_seeded_when_it_is_not_a_representative(tmp_path):
    space = space_of(tmp_path, "space: {num_layers: [1]}")
    space.representatives["deep"] = 6
    assert [c.layers for c in seeded_candidates(space, baseline=True)] == [(5,), (1,), (4,), (6,)]


def test_the_baseline_is_the_penultimate_layer_alone_with_a_single_layer_connector(tmp_path):
    space = space_of(tmp_path, "space: {num_layers: [1, 2], single_connectors: [mlp2x_gelu, linear]}")
    assert space.penultimate == 5
    assert space.is_baseline((5,), "mlp2x_gelu") and space.is_baseline([5], "linear")
    assert not space.is_baseline([4], "mlp2x_gelu")  # another layer
    assert not space.is_baseline([4, 5], "concat")  # a fusion that includes it
    assert not space.is_baseline([5], "concat")  # not a single-layer connector of this space


def test_prior_sampling_favours_representative_like_layers(tmp_path):
    space = space_of(tmp_path, "space: {num_layers: [1], groups: [middle]}")
    space.similarity[2][3] = 0.7  # layer 3 is far from representative 4
    rng = random.Random(0)
    draws = Counter(prior_sample(space, rng, 0.1).layers[0] for _ in range(400))
    assert draws[4] > 5 * draws[3] > 0


def test_spaces_reject_impossible_layer_counts(tmp_path):
    with pytest.raises(UserError, match="needs 4 groups"):
        space_of(tmp_path, "space: {num_layers: [4]}")
    with pytest.raises(UserError, match="no group 'middel'"):
        space_of(tmp_path, "space: {groups: [middel]}")
    with pytest.raises(UserError, match="space.layers"):
        space_of(tmp_path, "space: {layers: [9]}")


def test_representatives_outside_the_candidate_layers_are_not_seeded(tmp_path):
    space = space_of(tmp_path, "space: {num_layers: [1], layers: [2, 3, 5, 6]}")  # representatives 1, 4, 5
    assert [c.layers for c in seeded_candidates(space, baseline=True)] == [(5,)]
