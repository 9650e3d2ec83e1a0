"""The cost-aware objective: a configuration's cost on the meta device, the penalty, max_ratio, the front; replay
searches on Ray Tune for real (slow)."""

import json

import pyarrow.parquet as pq
import pytest

from raylayers.config import ModelConfig, SearchConfig, load_config
from raylayers.connectors import build_connector
from raylayers.errors import UserError
from raylayers.lrs import load_lrs
from raylayers.model import LlavaLayers, ModelDims, connector_spec, load_tokenizer
from raylayers.search.cost import (
    PAPER_DIMS,
    connector_cost,
    cost_summary,
    model_cost,
    pareto_front,
    table_costs,
    trained_costs,
)
from raylayers.search.replay import paper_single_layer_rows, single_layer_table, with_costs, write_lrs, write_table
from raylayers.search.results import read_results
from raylayers.search.space import build_layer_space
from raylayers.search.trial import load_table
from raylayers.search.tuner import run_search

TOY = ModelDims(vision_dim=32, num_encoder_layers=6, grid=(4, 4), llm_dim=48, num_llm_layers=2)  # 16 patches


# ================================================================================================ one configuration
def test_fusion_costs_relate_to_the_single_layer_as_the_connectors_say():
    linear = connector_cost("linear", [5], TOY, "linear")
    assert linear == {"visual_tokens": 16, "connector_params": 32 * 48 + 48}  # the baseline: one Linear
    mlp = connector_cost("mlp2x_gelu", [5], TOY)
    assert mlp["visual_tokens"] == 16 and mlp["connector_params"] == 32 * 48 + 48 + 48 * 48 + 48
    sti = connector_cost("dense_sti", [1, 3, 5], TOY)  # two extra layers pooled by 8: 2 x ceil(16 / 8) more tokens
    assert sti["visual_tokens"] == 16 + 2 * 2 and sti["connector_params"] == mlp["connector_params"]
    concat = connector_cost("concat", [1, 3, 5], TOY)  # the same tokens, a projector three times as wide
    assert concat["visual_tokens"] == 16
    assert concat["connector_params"] - mlp["connector_params"] == 2 * 32 * 48
    assert connector_cost("concat", [1, 3, 5], TOY, "linear")["connector_params"] == 3 * 32 * 48 + 48
    wider = connector_cost("dense_sti", [1, 3, 5], TOY, options={"pool_stride": 4})
    assert wider["visual_tokens"] == 16 + 2 * 4  # the connector's options count


@pytest.mark.parametrize("name, layers", [("concat", [1, 3, 5]), ("dense_sci", [2, 5]), ("dense_dci", [1, 3, 5]),
                                          ("mmfuser", [1, 3, 5]), ("scalar_mix", [2, 4, 6]),
                                          ("internal_direct", [1, 5])])
def test_the_meta_device_count_is_the_built_connectors(name, layers):
    spec = connector_spec(name, layers, "mlp2x_gelu", {}, TOY)
    real = build_connector(spec)
    assert connector_cost(name, layers, TOY) == {"visual_tokens": real.num_tokens(16),
                                                 "connector_params": sum(p.numel() for p in real.parameters())}


def test_the_cost_is_counted_on_the_meta_device_without_allocating():
    huge = ModelDims(vision_dim=65536, num_encoder_layers=6, grid=(24, 24), llm_dim=65536, num_llm_layers=2)
    cost = connector_cost("concat", [1, 3, 5], huge, "linear")  # 3 x 2^32 weights: 51 GB if it were allocated
    assert cost["connector_params"] == 3 * 65536 * 65536 + 65536 and cost["visual_tokens"] == 576


def test_the_cost_from_configs_is_the_models_own(tiny_stack):
    encoder = tiny_stack / "encoder"
    config = ModelConfig(encoder=str(encoder), lm=str(encoder / "lm"), connector="dense_sti", layers=[1, 2])
    model = LlavaLayers.build(config, load_tokenizer(str(encoder / "lm")), seed=0)
    assert model_cost(config, model.spec.layers) == {
        "visual_tokens": model.num_image_tokens, "connector_params": model.parameter_counts()["connector"]}


def test_a_hyperparameter_that_changes_the_projector_changes_the_cost(tmp_path, saved_family):
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                vocab_size=64).save_pretrained(tmp_path / "lm")  # a config only: no weights are read
    config = load_config(SearchConfig, data={"space": {
        "num_layers": [1, 2], "single_connectors": ["linear"], "fusion_connectors": ["concat"],
        "hyperparameters": {"model.projector": {"choice": ["linear", "mlp2x_gelu"]}}}})
    layer_space = build_layer_space(config.space, load_lrs(write_lrs(tmp_path / "lrs.json", num_layers=4, groups=(
        ("shallow", [1, 2], 1), ("deep", [3, 4], 3)))))

    def model_of(trial):  # what trial_train_config gives the search: the base model with the trial's projector
        return ModelConfig(encoder=saved_family("clip"), lm=str(tmp_path / "lm"), connector=trial["connector"],
                           projector=trial["hyperparameters"]["model.projector"])

    costs = trained_costs(config, layer_space, model_of).costs  # the tiny CLIP: width 32, 32 px in 8 px patches
    narrow = costs["layers=1,3|connector=concat|model.projector=linear"]
    wide = costs["layers=1,3|connector=concat|model.projector=mlp2x_gelu"]
    assert narrow == {"visual_tokens": 16, "connector_params": 2 * 32 * 48 + 48}
    assert wide["connector_params"] == narrow["connector_params"] + 48 * 48 + 48


# ================================================================================================ the front
def test_the_front_keeps_what_nothing_beats_on_score_and_cost_cheapest_first():
    def row(key, tokens, score, status="completed"):
        return {"key": key, "status": status, "visual_tokens": tokens, "unpenalised_score": score,
                "cost_ratio": tokens / 16, "score": score - 0.5 * (tokens / 16 - 1)}

    rows = [row("a", 16, 0.70), row("b", 16, 0.80), row("c", 18, 0.78), row("d", 18, 0.85), row("e", 20, 0.85),
            row("f", 24, 0.90), row("g", 24, 0.99, status="pruned"), row("h", 12, 0.60)]
    assert [r["key"] for r in pareto_front(rows, "visual_tokens")] == ["h", "b", "d", "f"]

    class Costs:  # what cost_summary reads of a SearchCosts
        cost = load_config(SearchConfig, data={"objective": {"cost": {"measure": "visual_tokens",
                                                                      "penalty": 0.5}}}).objective.cost
        baseline_key, baseline_cost, left_out = "b", 16.0, frozenset({"x"})

    summary = cost_summary(rows, Costs())
    assert summary["left_out"] == 1 and summary["baseline_cost"] == 16.0 and summary["max_ratio"] is None
    assert summary["front"][2] == {"key": "d", "score": 0.85, "cost": 18, "cost_ratio": 1.125, "objective": 0.7875}


# ================================================================================================ replay tables
def test_benchmark_rows_carry_the_cost_of_clip_l_336():
    rows = with_costs(paper_single_layer_rows()[:3])
    assert all(r["visual_tokens"] == 576 and r["connector_params"] == 1024 * 2048 + 2048 for r in rows)
    assert PAPER_DIMS.num_patches == 576


@pytest.mark.slow
def test_build_tables_writes_the_cost_columns(tmp_path):
    from raylayers.search.replay import build_tables

    build_tables(tmp_path / "tables", tmp_path, 0.01)
    rows = pq.read_table(tmp_path / "tables" / "fusion_four_connectors.parquet").to_pylist()
    assert all(r["visual_tokens"] == 576 and r["connector_params"] > 0 for r in rows)
    by = {(tuple(r["layers"]), r["connector"]): r["connector_params"] for r in rows}
    assert by[((3, 18), "concat")] > by[((23,), "linear")] and by[((3, 18, 23), "concat")] > by[((3, 18), "concat")]


def test_a_table_without_the_measures_column_is_refused_naming_file_and_column(tmp_path):
    table_path = write_table(tmp_path / "table.parquet", single_layer_table())
    config = load_config(SearchConfig, data={"objective": {"cost": {"measure": "connector_params"}},
                                             "space": {"num_layers": [1]}})
    layer_space = build_layer_space(config.space, load_lrs(write_lrs(tmp_path / "lrs.json")))
    with pytest.raises(UserError, match="table.parquet.*no 'connector_params' column"):
        table_costs(config, layer_space, load_table(table_path), table_path)


# ================================================================================================ searches
def cost_table(tmp_path, triples: bool):
    """The tests' 6 layers; singles (mlp2x_gelu) score 0.5 + 0.1 (3 - |l - 4|), dense_sti pairs the mean of their
    layers + 0.1 (best: 4+5 at 0.85), triples (3 + 2 x 2 tokens, ratio 1.25) 0.95; linear learning curves."""
    finals = {layer: 0.5 + 0.1 * (3 - abs(layer - 4)) for layer in range(1, 7)}
    rows = [r for r in single_layer_table()]
    groups = ([1, 2], [3, 4], [5, 6])
    configs = [(a, b) for i, g in enumerate(groups) for h in groups[i + 1:] for a in g for b in h]
    if triples:
        configs += [(a, b, c) for a in groups[0] for b in groups[1] for c in groups[2]]
    for layers in configs:
        final = sum(finals[x] for x in layers) / len(layers) + 0.1 if len(layers) == 2 else 0.95
        rows += [{"layers": list(layers), "connector": "dense_sti", "step": step, "score": final * step / 40,
                  "score_general": final} for step in (10, 20, 40)]
    return write_table(tmp_path / "cost_table.parquet", with_costs(rows, TOY))


def cost_space(tmp_path, num_layers, cost: dict, budget: dict):
    lrs = write_lrs(tmp_path / "lrs" / "lrs.json")
    path = tmp_path / "space.yaml"
    path.write_text(f"lrs: {{file: {lrs}}}\n"
                    f"space: {{num_layers: {num_layers}, single_connectors: [mlp2x_gelu], "
                    "fusion_connectors: [dense_sti]}\n"
                    f"objective: {{cost: {json.dumps(cost)}}}\nbudget: {json.dumps(budget)}\n")
    return path


@pytest.mark.slow
def test_max_ratio_leaves_configurations_out_of_the_search(tmp_path, capfd):
    table = cost_table(tmp_path, triples=True)  # triples score best: the searcher would want them
    space = cost_space(tmp_path, [1, 2, 3], {"measure": "visual_tokens", "max_ratio": 1.2},
                       {"trials": 14, "grace_period": 0, "searcher": "tpe", "seed": 0})
    summary = run_search(space, tmp_path / "out", objective=f"table:{table}")
    assert "objective = score - 0 x (visual_tokens / baseline's 16 - 1), at most 1.2x (8 configurations left out)" \
        in capfd.readouterr().out
    rows = read_results(tmp_path / "out" / "results.parquet")
    assert len(rows) == 14 and all(len(r["layers"]) < 3 for r in rows)
    assert all(r["visual_tokens"] <= 1.2 * 16 and r["cost_ratio"] <= 1.2 for r in rows)
    assert summary["cost"]["left_out"] == 8 and summary["cost"]["baseline_key"] == "layers=5|connector=mlp2x_gelu"
    assert summary["cost"]["max_ratio"] == 1.2


@pytest.mark.slow
def test_the_penalty_changes_the_best_and_the_front_is_the_hand_checked_one(tmp_path):
    table = cost_table(tmp_path, triples=False)  # 6 singles (16 tokens) and 12 dense_sti pairs (18 tokens)
    space = cost_space(tmp_path, [1, 2], {"measure": "visual_tokens", "penalty": 0.5},
                       {"trials": 18, "grace_period": 0, "searcher": "grid"})
    summary = run_search(space, tmp_path / "out", objective=f"table:{table}")
    # 4+5 dense_sti scores 0.85 but costs 18/16 tokens: 0.85 - 0.5 x 0.125 = 0.7875 < layer 4 alone, 0.8
    assert summary["best"]["key"] == "layers=4|connector=mlp2x_gelu" and summary["best"]["score"] == pytest.approx(0.8)
    front = summary["cost"]["front"]
    assert [(f["key"], f["cost"]) for f in front] == [("layers=4|connector=mlp2x_gelu", 16),
                                                      ("layers=4,5|connector=dense_sti", 18)]
    assert front[1]["score"] == pytest.approx(0.85) and front[1]["objective"] == pytest.approx(0.7875)
    assert front[1]["cost_ratio"] == pytest.approx(1.125) and summary["cost"]["left_out"] == 0
    rows = {r["key"]: r for r in read_results(tmp_path / "out" / "results.parquet")}
    pair = rows["layers=4,5|connector=dense_sti"]
    assert pair["unpenalised_score"] == pytest.approx(0.85) and pair["score"] == pytest.approx(0.7875)
    assert pair["probe_score"] == pytest.approx(0.85 / 2 - 0.0625)  # the intermediate score was penalised too
    assert (pair["visual_tokens"], pair["connector_params"]) == (18, connector_cost("dense_sti", [4, 5], TOY)[
        "connector_params"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Score against cost" in report and "| 4,5 | dense_sti | 18 | 1.12 | 0.8500 | 0.7875 |" in report
    assert (tmp_path / "out" / "figures" / "cost_front.png").is_file()


@pytest.mark.slow
def test_without_a_cost_objective_the_costs_are_recorded_and_the_score_is_the_score(tmp_path):
    table = cost_table(tmp_path, triples=False)
    lrs = write_lrs(tmp_path / "lrs" / "lrs.json")
    space = tmp_path / "space.yaml"
    space.write_text(f"lrs: {{file: {lrs}}}\nspace: {{num_layers: [2], fusion_connectors: [dense_sti]}}\n"
                     "budget: {trials: 2, grace_period: 0, searcher: grid}\n")
    summary = run_search(space, tmp_path / "out", objective=f"table:{table}")
    assert "cost" not in summary and not (tmp_path / "out" / "figures" / "cost_front.png").exists()
    rows = read_results(tmp_path / "out" / "results.parquet")
    assert all(r["visual_tokens"] == 18 and r["cost_ratio"] is None and r["unpenalised_score"] is None for r in rows)
    assert all(r["score"] == pytest.approx(r["score_general"]) for r in rows)


def test_max_ratio_that_leaves_nothing_is_one_line(tmp_path):
    table = cost_table(tmp_path, triples=False)
    space = cost_space(tmp_path, [2], {"measure": "visual_tokens", "max_ratio": 0.5},
                       {"trials": 2, "grace_period": 0})
    with pytest.raises(UserError, match="objective.cost.max_ratio 0.5 leaves no configuration of the space"):
        run_search(space, tmp_path / "out", objective=f"table:{table}")


def test_max_ratio_with_a_callers_searcher_is_refused_before_anything_runs(tmp_path):
    """The benchmark's hook for stock searchers: such a searcher cannot be told what max_ratio leaves out."""
    table = cost_table(tmp_path, triples=True)
    space = cost_space(tmp_path, [1, 2, 3], {"measure": "visual_tokens", "max_ratio": 1.2}, {"trials": 2})
    with pytest.raises(ValueError, match="8 configurations are left out"):
        run_search(space, tmp_path / "out", objective=f"table:{table}", search_factory=lambda *args: None)
    assert not (tmp_path / "out" / "results.parquet").exists()
