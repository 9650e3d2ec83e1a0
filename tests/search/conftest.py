"""Fixtures of the search tests."""

import json

import pytest
from replay_tables import single_layer_table, write_lrs, write_table


@pytest.fixture
def replay(tmp_path):
    """(space file writer, lrs path, table path) for a 6-layer encoder, single layers only."""
    lrs = write_lrs(tmp_path / "lrs" / "lrs.json")
    table = write_table(tmp_path / "table.parquet", single_layer_table())

    def space(name="space.yaml", **budget):
        budget = {"trials": 6, "grace_period": 0, **budget}
        text = (f"lrs: {{file: {lrs}}}\n"
                "space: {num_layers: [1], single_connectors: [mlp2x_gelu]}\n"
                f"budget: {json.dumps(budget)}\n")
        path = tmp_path / name
        path.write_text(text)
        return path

    return space, lrs, table
