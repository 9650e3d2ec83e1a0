"""Bad search inputs: lrs.json, replay tables, the --out and --resume rules, a base recipe with a bad record; and
the demo's own flags. All fail before Ray starts."""

from __future__ import annotations

import json

import pytest

from bad_inputs.bad_inputs_testing import record, write_records
from raylayers.search.replay import single_layer_table, write_lrs, write_table


@pytest.fixture
def space(tmp_path):
    """`space(lrs=None, **extra)`: a replay-style space file over the tests' 6-layer LRS (or the given one)."""

    def write(lrs=None, extra: str = "") -> str:
        lrs = lrs or write_lrs(tmp_path / "lrs" / "lrs.json")
        path = tmp_path / "space.yaml"
        path.write_text(f"lrs: {{file: {lrs}}}\nspace: {{num_layers: [1], single_connectors: [mlp2x_gelu]}}\n"
                        f"budget: {{trials: 2, grace_period: 0}}\n{extra}")
        return str(path)

    return write


def search(space, out, *extra):
    return ["search", "--space", space, "--out", out, *extra]


def broken_lrs(tmp_path, change) -> str:
    path = write_lrs(tmp_path / "bad" / "lrs.json")
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("change, says", [
    (lambda d: d["groups"][1].pop("representative"), "groups[1] lacks representative"),
    (lambda d: d["groups"][0].update(representative=6), "groups[0]: representative 6 is not one of its layers"),
    (lambda d: d["groups"][2].update(layers="5,6"), "groups[2]: 'layers' must be a non-empty list"),
    (lambda d: d["groups"][2].update(layers=[5, 9]), "layer numbers in 1..6"),
    (lambda d: d.update(matrix=d["matrix"][:3]), "'matrix' must be 6 x 6"),
    (lambda d: d.update(num_layers="six"), "'num_layers' must be a positive integer"),
    (lambda d: d.pop("groups"), "lacks groups"),
])
def test_a_bad_lrs_json(refused, space, tmp_path, change, says):
    refused(search(space(broken_lrs(tmp_path, change)), tmp_path / "out"), "lrs.json", says)


def test_an_lrs_json_that_is_not_utf8(refused, space, tmp_path):
    (tmp_path / "lrs.json").write_bytes(b'{"encoder": "\xff"}')
    refused(search(space(tmp_path / "lrs.json"), tmp_path / "out"), "LRS file", "not UTF-8 text (byte 13)")


def test_an_lrs_json_that_is_a_list(refused, space, tmp_path):
    (tmp_path / "lrs.json").write_text("[1, 2]")
    refused(search(space(tmp_path / "lrs.json"), tmp_path / "out"), "lrs.json", "must hold a JSON object")


@pytest.mark.parametrize("change, says", [
    (lambda row: row.update(layers="4"), "row 0: 'layers' must be a non-empty list of positive layer numbers"),
    (lambda row: row.update(layers=[0]), "row 0: 'layers' must be"),
    (lambda row: row.update(score="high"), "row 0: 'score' must be a number"),
])
def test_a_bad_replay_table_row(refused, space, tmp_path, change, says):
    rows = single_layer_table()
    for row in rows:  # every row: one type per column
        change(row)
    table = write_table(tmp_path / "table.parquet", rows)
    refused(search(space(), tmp_path / "out", "--objective", f"table:{table}"), "table.parquet", says)


def test_a_replay_table_without_a_score_column(refused, space, tmp_path):
    rows = [{k: v for k, v in row.items() if k != "score"} for row in single_layer_table()]
    table = write_table(tmp_path / "table.parquet", rows)
    refused(search(space(), tmp_path / "out", "--objective", f"table:{table}"), "missing column(s) score")


def test_a_replay_table_without_the_cost_objectives_column(refused, space, tmp_path):
    table = write_table(tmp_path / "table.parquet", single_layer_table())  # no visual_tokens column
    refused(search(space(extra="objective: {cost: {measure: visual_tokens, max_ratio: 2.0}}\n"), tmp_path / "out",
                   "--objective", f"table:{table}"), "table.parquet", "no 'visual_tokens' column")


@pytest.mark.parametrize("cost, says", [
    ("{measure: flops}", "'objective.cost.measure'"),
    ("{measure: visual_tokens, penalty: -1}", "'objective.cost.penalty'"),
    ("{measure: visual_tokens, max_ratio: 0}", "'objective.cost.max_ratio'"),
])
def test_a_bad_cost_objective(refused, space, tmp_path, cost, says):
    refused(search(space(extra=f"objective: {{cost: {cost}}}\n"), tmp_path / "out"), "space.yaml", says)


def test_a_replay_table_that_is_not_parquet(refused, space, tmp_path):
    (tmp_path / "table.parquet").write_text("layers,score\n")
    refused(search(space(), tmp_path / "out", "--objective", f"table:{tmp_path / 'table.parquet'}"),
            "table.parquet", "not a readable parquet file")


def test_a_search_into_an_out_that_holds_one(refused, space, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.parquet").write_bytes(b"PAR1")
    refused(search(space(), tmp_path / "out"), "already holds a search; use --resume", kept=tmp_path / "out",
            nothing_new=True)


def test_resume_with_no_search_to_resume(refused, space, tmp_path):
    refused(search(space(), tmp_path / "out", "--resume"), "--resume: no search to resume")


def test_an_unknown_objective(refused, space, tmp_path):
    refused(search(space(), tmp_path / "out", "--objective", "eval"), "--objective 'eval'")


def test_a_base_recipe_with_a_bad_record_fails_before_any_trial(refused, space, train_yaml, tiny_stack, tmp_path):
    data = write_records(tmp_path / "stage1.json", [record("s0"), record("s1", image=[1])])
    recipe = train_yaml(data={"stage1": str(data)})
    spec = space(extra=f"base: {{config: {recipe}}}\nobjective: {{bench: {tiny_stack / 'world' / 'bench'}}}\n")
    refused(search(spec, tmp_path / "out"), "record s1", "stage1.json", "'image' is a list")


def test_demo_with_zero_trials(refused, tmp_path):
    refused(["demo", "--out", tmp_path / "demo", "--trials", "0"], "--trials", "positive integer", nothing_new=True)


def test_demo_into_a_file(refused, tmp_path):
    (tmp_path / "taken").write_text("mine")
    refused(["demo", "--out", tmp_path / "taken", "--scale", "tiny"], "taken", "Not a directory")


def test_an_unknown_command(refused):
    refused(["trian"], "invalid choice: 'trian'")
