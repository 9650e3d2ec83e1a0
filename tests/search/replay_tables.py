"""Helpers of the search tests: an LRS file and replay tables (no training needed)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_lrs(path, num_layers=6, groups=(("shallow", [1, 2], 1), ("middle", [3, 4], 4), ("deep", [5, 6], 5))):
    matrix = np.eye(num_layers) * 0.5 + 0.5
    for _, layers, _ in groups:
        for i in layers:
            for j in layers:
                matrix[i - 1, j - 1] = 1.0 if i == j else 0.9
    data = {"encoder": "test", "num_layers": num_layers, "metric": "cosine", "num_images": 1,
            "matrix": matrix.tolist(),
            "groups": [{"name": n, "layers": list(ls), "representative": r} for n, ls, r in groups]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_table(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def single_layer_table(num_layers=6, steps=(10, 20, 40)):
    """A learning curve per single layer; layer 4 is best."""
    rows = []
    for layer in range(1, num_layers + 1):
        final = 0.5 + 0.1 * (3 - abs(layer - 4))
        for step in steps:
            rows.append({"layers": [layer], "connector": "mlp2x_gelu", "step": step,
                         "score": final * step / steps[-1], "score_general": final})
    return rows


