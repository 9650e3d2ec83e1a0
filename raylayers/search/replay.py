"""Replay tables and the LRS files that go with them, for `raylayers search --objective table:FILE.parquet`.

A replay table lets a search run without training: each trial replays a configuration's measured (or synthetic)
learning curve. Its format (DESIGN.md): a row per configuration and step with `layers` (positive ints), `connector`,
`score`, optional `score_<category>` and optional `step`. The tests build their tables and LRS files here, so a
search can be exercised in seconds:
- `write_lrs`: an `lrs.json` as `raylayers lrs` writes it (groups, representatives, a similarity matrix from a rule);
- `write_table`: rows to a Parquet replay table; `single_layer_table`: the tests' small table (layer 4 is best).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Groups = Sequence[tuple[str, Sequence[int], int]]  # (name, layers, representative) per group
Similarity = Callable[[int, int, str | None, str | None], float]  # (i, j, group of i, group of j) -> similarity

TOY_NUM_LAYERS = 6
TOY_GROUPS: Groups = (("shallow", [1, 2], 1), ("middle", [3, 4], 4), ("deep", [5, 6], 5))  # the tests' encoder


# ================================================================================================ LRS files
def same_group_similarity(i: int, j: int, group_i: str | None, group_j: str | None) -> float:
    """1 on the diagonal, 0.9 within a group, 0.5 elsewhere: the tests' LRS, whose groups are plain to see."""
    if i == j:
        return 1.0
    return 0.9 if group_i is not None and group_i == group_j else 0.5


def write_lrs(path: str | Path, groups: Groups = TOY_GROUPS, num_layers: int = TOY_NUM_LAYERS,
              similarity: Similarity = same_group_similarity, *, encoder: str = "test", num_images: int = 1,
              newline_at_end: bool = False) -> Path:
    """Write an `lrs.json` that `raylayers.lrs.load_lrs` reads: the groups with their representatives and the
    layer-by-layer similarity matrix, `similarity(i, j, group of i, group of j)` rounded to 4 decimals (layers are
    1-based; a layer in no group has group None). The defaults are the tests' 6-layer encoder in three groups of
    two. `encoder` and `num_images` only describe the file; `newline_at_end` because the benchmark's committed
    lrs.json ends with one and the tests' files never did, and both stay byte for byte what they were."""
    group_of = {layer: name for name, layers, _ in groups for layer in layers}
    matrix = np.empty((num_layers, num_layers))
    for i, j in itertools.product(range(1, num_layers + 1), repeat=2):
        matrix[i - 1, j - 1] = similarity(i, j, group_of.get(i), group_of.get(j))
    data = {"encoder": encoder, "num_layers": num_layers, "metric": "cosine", "num_images": num_images,
            "matrix": matrix.round(4).tolist(),
            "groups": [{"name": name, "layers": list(layers), "representative": representative}
                       for name, layers, representative in groups]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) + ("\n" if newline_at_end else ""))
    return path


# ================================================================================================ tables
def write_table(path: str | Path, rows: list[dict]) -> Path:
    """Write replay-table rows (dicts with the same keys) to a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return Path(path)


def single_layer_table(num_layers: int = TOY_NUM_LAYERS, steps: Sequence[int] = (10, 20, 40)) -> list[dict]:
    """The tests' table: a linear learning curve per single layer (connector mlp2x_gelu) up to a final score
    0.5 + 0.1 (3 - |layer - 4|), so layer 4 is best (0.8); `score_general` holds the final score at every step."""
    rows = []
    for layer in range(1, num_layers + 1):
        final = 0.5 + 0.1 * (3 - abs(layer - 4))
        for step in steps:
            rows.append({"layers": [layer], "connector": "mlp2x_gelu", "step": step,
                         "score": final * step / steps[-1], "score_general": final})
    return rows
