"""Layer-wise Representation Similarity (LRS): the L x L similarity of an encoder's layers, and its groups.

Similarity (the paper's "LRS"), computed by streaming over image batches with running sums, so memory does not grow
with the number of images:
- `cosine` (default, the paper's): for layers i, j the cosine of token t's features in layer i and in layer j,
  averaged over patch tokens and images. With u_l the L2-normalised token features of layer l stacked over all
  N tokens seen, S = U U^T / N: one GEMM per batch, (L, N*D) x (N*D, L).
- `cka`: linear CKA between layers, examples = images, features = the image's patch tokens flattened (T*D). Full
  CKA needs all images at once, so we use the minibatch estimator of Nguyen, Raghu & Kornblith (ICLR 2021, "Do Wide
  and Deep Networks Learn the Same Things?"): unbiased HSIC averaged over batches, CKA = H_ij / sqrt(H_ii H_jj).

Grouping (the paper reads groups off the heatmap; we need an algorithm). The cosine matrix is a Gram matrix of unit
vectors (each layer is the point U_l / sqrt(N)), so grouping layers is k-means on those points, constrained to
contiguous groups. The within-group sum of squares of a segment g is |g| - sum_{i,j in g} S_ij / |g|, and the
optimal K-segmentation is found exactly by dynamic programming over boundaries (Fisher's optimal partition,
O(K L^2)). `--groups auto` picks K by the mean silhouette (Rousseeuw 1987) of the optimal K-segmentation, over
K = 2..min(L-1, 10), with distances d_ij = sqrt(2 - 2 S_ij) between the layer points: the largest mean silhouette
wins, ties go to the smaller K. Silhouette rewards groups that are tight *and* apart, so a smooth drift of layers is
not cut into ever more pieces (the within-group cost alone always falls with K), and blocks of identical layers
score 1 exactly where the blocks are.
Representative of a group: its medoid, the layer with the highest mean similarity to the group's layers (ties: the
deeper layer).

The DP and the streaming estimators are written by hand: no maintained library offers contiguous optimal
segmentation of a similarity matrix or streaming minibatch CKA over token features.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from raylayers.errors import UserError

METRICS = ("cosine", "cka")
MAX_AUTO_GROUPS = 10
# A one-group cost below this means every layer is alike.
EXACT_FIT_TOLERANCE = 1e-6


# ------------------------------------------------------------------------------------------------ similarity
class CosineAccumulator:
    """Running sum of token-wise cosine similarity between every pair of layers."""

    def __init__(self, num_layers: int):
        self.sums = torch.zeros(num_layers, num_layers, dtype=torch.float64)
        self.tokens = 0

    def update(self, features: list[torch.Tensor]) -> None:
        """features: one (B, T, D) tensor per layer, same B and T."""
        units = torch.stack([f.float() for f in features])  # (L, B, T, D)
        units = torch.nn.functional.normalize(units, dim=-1)
        flat = units.reshape(units.shape[0], -1)  # (L, B*T*D)
        self.sums += (flat @ flat.T).double().cpu()  # (L, L): sum over tokens of u_i . u_j
        self.tokens += units.shape[1] * units.shape[2]

    def result(self) -> np.ndarray:
        return (self.sums / max(self.tokens, 1)).numpy()


class CKAAccumulator:
    """Minibatch linear CKA (unbiased HSIC averaged over batches); a batch needs at least 4 images."""

    def __init__(self, num_layers: int):
        self.hsic = torch.zeros(num_layers, num_layers, dtype=torch.float64)
        self.batches = 0

    def update(self, features: list[torch.Tensor]) -> None:
        flat = torch.stack([f.reshape(f.shape[0], -1).double() for f in features])  # (L, n, T*D)
        n = flat.shape[1]
        if n < 4:
            raise ValueError(f"CKA needs at least 4 images per batch, got {n}")
        grams = flat @ flat.transpose(1, 2)  # (L, n, n)
        grams = grams * (1 - torch.eye(n, dtype=grams.dtype))  # zero diagonals (unbiased estimator)
        flat_grams = grams.reshape(grams.shape[0], -1)  # (L, n*n)
        trace_term = flat_grams @ flat_grams.T  # tr(K_i K_j), since the Grams are symmetric
        totals = grams.sum(dim=(1, 2))  # (L,) 1^T K 1
        row_sums = grams.sum(dim=2)  # (L, n) K 1
        hsic = (trace_term + torch.outer(totals, totals) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * (row_sums @ row_sums.T)) / (n * (n - 3))
        self.hsic += hsic.cpu()
        self.batches += 1

    def result(self) -> np.ndarray:
        diagonal = torch.clamp(torch.diagonal(self.hsic), min=1e-30)
        return (self.hsic / torch.sqrt(torch.outer(diagonal, diagonal))).numpy()


def make_accumulator(metric: str, num_layers: int):
    if metric == "cosine":
        return CosineAccumulator(num_layers)
    if metric == "cka":
        return CKAAccumulator(num_layers)
    raise UserError(f"unknown metric '{metric}' (valid: {', '.join(METRICS)})")


# ------------------------------------------------------------------------------------------------ grouping
def _segment_costs(similarity: np.ndarray) -> np.ndarray:
    """cost[a, b] = within-group sum of squares of layers a..b (0-based, inclusive) = size - sum(S_ab) / size."""
    size = similarity.shape[0]
    prefix = np.zeros((size + 1, size + 1))
    prefix[1:, 1:] = similarity.cumsum(0).cumsum(1)
    cost = np.full((size, size), np.inf)
    for start in range(size):
        for end in range(start, size):
            block = (prefix[end + 1, end + 1] - prefix[start, end + 1] - prefix[end + 1, start]
                     + prefix[start, start])
            width = end - start + 1
            cost[start, end] = max(width - block / width, 0.0)
    return cost


def optimal_segmentation(similarity: np.ndarray, num_groups: int) -> tuple[list[tuple[int, int]], float]:
    """Contiguous groups minimising the total within-group cost, exactly (DP over boundaries).

    Returns ([(first, last), ...] as 0-based inclusive indices, total cost).
    """
    size = similarity.shape[0]
    if not 1 <= num_groups <= size:
        raise UserError(f"--groups {num_groups} is out of range: the encoder has {size} layers "
                        f"(valid: 1..{size} or auto)")
    cost = _segment_costs(similarity)
    # best[k][j]: least cost of covering layers 0..j with k+1 groups; start[k][j]: where its last group starts.
    best = np.full((num_groups, size), np.inf)
    start = np.zeros((num_groups, size), dtype=int)
    best[0] = cost[0]
    for k in range(1, num_groups):
        for j in range(k, size):
            candidates = best[k - 1, k - 1:j] + cost[k:j + 1, j]  # last group starts at i = k..j
            i = int(np.argmin(candidates))
            best[k, j], start[k, j] = candidates[i], i + k
    groups, end = [], size - 1
    for k in range(num_groups - 1, -1, -1):
        first = start[k, end] if k > 0 else 0
        groups.append((first, end))
        end = first - 1
    return groups[::-1], float(best[num_groups - 1, size - 1])


def silhouette(similarity: np.ndarray, segments: list[tuple[int, int]]) -> float:
    """Mean silhouette of a segmentation; a layer alone in its group scores 0 (Rousseeuw's convention)."""
    distance = np.sqrt(np.clip(2.0 - 2.0 * similarity, 0.0, None))
    labels = np.zeros(similarity.shape[0], dtype=int)
    for group, (first, last) in enumerate(segments):
        labels[first:last + 1] = group
    scores = []
    for layer in range(similarity.shape[0]):
        own = labels == labels[layer]
        if own.sum() == 1:
            scores.append(0.0)
            continue
        within = distance[layer, own].sum() / (own.sum() - 1)
        nearest = min(distance[layer, labels == other].mean() for other in set(labels) - {labels[layer]})
        scores.append(0.0 if max(within, nearest) == 0 else (nearest - within) / max(within, nearest))
    return float(np.mean(scores))


def choose_num_groups(similarity: np.ndarray) -> tuple[int, dict[int, float]]:
    """K for `--groups auto` by the mean silhouette (module docstring); returns (K, {K: silhouette})."""
    size = similarity.shape[0]
    _, total = optimal_segmentation(similarity, 1)
    if total <= EXACT_FIT_TOLERANCE:  # every layer alike: one group
        return 1, {}
    if size <= 2:
        return size, {}
    scores = {k: silhouette(similarity, optimal_segmentation(similarity, k)[0])
              for k in range(2, min(size - 1, MAX_AUTO_GROUPS) + 1)}
    best = max(scores.values())
    return min(k for k, score in scores.items() if score >= best - 1e-9), scores


def group_names(num_groups: int) -> list[str]:
    """shallow, middle, deep for three groups; shallow/deep for two; middle_1.. when there are more middles."""
    if num_groups == 1:
        return ["all"]
    middles = num_groups - 2
    middle = ["middle"] if middles == 1 else [f"middle_{i}" for i in range(1, middles + 1)]
    return ["shallow", *middle, "deep"]


def representative_layer(similarity: np.ndarray, layers: list[int]) -> int:
    """The group's medoid: highest mean similarity to the group's layers; ties go to the deeper layer."""
    index = [layer - 1 for layer in layers]
    mean_similarity = similarity[np.ix_(index, index)].mean(axis=1)
    best = mean_similarity.max()
    return max(layer for layer, value in zip(layers, mean_similarity) if value >= best - 1e-12)


@dataclass
class LayerGroup:
    name: str
    layers: list[int]
    representative: int


def lrs_groups(similarity: np.ndarray, num_groups: int | str = "auto") -> tuple[list[LayerGroup], dict]:
    """Group layers 1..L of an L x L similarity matrix; returns the groups and how K was chosen."""
    similarity = np.clip((similarity + similarity.T) / 2, -1.0, 1.0)
    if num_groups == "auto":
        k, scores = choose_num_groups(similarity)
        how = {"method": "auto", "criterion": "silhouette",
               "scores": {str(key): round(value, 6) for key, value in scores.items()}}
    else:
        k, how = int(num_groups), {"method": "given"}
    segments, within = optimal_segmentation(similarity, k)
    how.update(num_groups=k, within_cost=within)
    groups = []
    for name, (first, last) in zip(group_names(k), segments):
        layers = list(range(first + 1, last + 2))
        groups.append(LayerGroup(name, layers, representative_layer(similarity, layers)))
    return groups, how


# ------------------------------------------------------------------------------------------------ analysis
@dataclass
class LRSResult:
    """What `raylayers lrs` computes; `to_json` is the lrs.json contract."""

    encoder: str
    num_layers: int
    metric: str
    num_images: int
    matrix: np.ndarray
    groups: list[LayerGroup]
    grouping: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    skip_summary: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "encoder": self.encoder,
            "num_layers": self.num_layers,
            "metric": self.metric,
            "num_images": self.num_images,
            "matrix": [[round(float(v), 6) for v in row] for row in self.matrix],
            "groups": [asdict(group) for group in self.groups],
            "grouping": self.grouping,
            "num_skipped": sum(self.skipped.values()),
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def parse_groups(value: str | int) -> int | str:
    """`--groups` value: "auto" or a positive integer (checked against the depth later)."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise UserError(f"--groups must be a positive integer or 'auto', got '{value}'") from None
    if k < 1:
        raise UserError(f"--groups must be at least 1, got {k}")
    return k


def compute_lrs(tower, source, metric: str = "cosine", num_groups: int | str = "auto",
                max_images: int | None = None, batch_size: int = 16, progress: bool = True) -> LRSResult:
    """Stream the source's images through the tower and build the LRS matrix and groups."""
    from tqdm import tqdm

    from raylayers.features import tower_features
    from raylayers.image_source import SkipCounter, image_refs, iter_image_batches

    num_groups = parse_groups(num_groups)
    if num_groups != "auto" and num_groups > tower.num_layers:
        raise UserError(f"--groups {num_groups} is larger than the encoder's depth ({tower.num_layers} layers)")
    if metric not in METRICS:
        raise UserError(f"unknown metric '{metric}' (valid: {', '.join(METRICS)})")
    refs = image_refs(source)
    if not refs:
        raise UserError(f"image source '{source}' holds no images")
    total = len(refs) if max_images is None else min(len(refs), max_images)
    layers = list(range(1, tower.num_layers + 1))
    accumulator = make_accumulator(metric, tower.num_layers)
    skipped = SkipCounter()
    seen = 0
    started = time.perf_counter()
    bar = tqdm(total=total, desc=f"LRS ({metric})", unit="img", disable=not progress)
    with bar:
        batches = iter_image_batches(refs, batch_size, max_images, skipped,
                                     min_last_batch=4 if metric == "cka" else 1)
        for images in batches:
            features = tower_features(tower, images, layers)  # {layer: (B, N, D)}
            if metric == "cka" and len(images) < 4:
                raise UserError(f"--metric cka needs at least 4 readable images, '{source}' has {len(images)}")
            accumulator.update([features[layer] for layer in layers])
            seen += len(images)
            bar.update(len(images))
    if seen == 0:
        raise UserError(f"none of the {len(refs)} files in '{source}' is a readable image ({skipped.summary()})")
    matrix = accumulator.result()
    groups, grouping = lrs_groups(matrix, num_groups)
    return LRSResult(tower.name, tower.num_layers, metric, seen, matrix, groups, grouping, dict(skipped.reasons),
                     skipped.summary() if skipped.total else "", time.perf_counter() - started)


def write_lrs(result: LRSResult, out_dir: str | Path) -> dict[str, Path]:
    """Write lrs.json, lrs.parquet (long form) and lrs.png (heatmap with group boundaries)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raylayers.plots import plot_lrs_heatmap

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "lrs.json", "parquet": out_dir / "lrs.parquet", "png": out_dir / "lrs.png"}
    paths["json"].write_text(json.dumps(result.to_json(), indent=2) + "\n")
    group_of = {layer: group.name for group in result.groups for layer in group.layers}
    size = result.num_layers
    layer_i = [i for i in range(1, size + 1) for _ in range(size)]
    layer_j = [j for _ in range(size) for j in range(1, size + 1)]
    table = pa.table({
        "layer_i": pa.array(layer_i, pa.int32()),
        "layer_j": pa.array(layer_j, pa.int32()),
        "similarity": pa.array(result.matrix.reshape(-1).astype(float), pa.float64()),
        "group_i": [group_of[i] for i in layer_i],
        "group_j": [group_of[j] for j in layer_j],
        "metric": [result.metric] * len(layer_i),
        "encoder": [result.encoder] * len(layer_i),
    })
    pq.write_table(table, paths["parquet"])
    plot_lrs_heatmap(result.matrix, result.groups, paths["png"],
                     title=f"LRS ({result.metric}) of {Path(result.encoder).name}, {result.num_images} images")
    return paths


def load_lrs(path: str | Path) -> dict:
    """Read an lrs.json (a file, or a folder holding one) and check the fields later stages rely on."""
    path = Path(path)
    if path.is_dir():
        path = path / "lrs.json"
    from raylayers.files import read_user_json

    data = read_user_json(path, "LRS file")
    if not isinstance(data, dict):
        raise UserError(f"LRS file '{path}' must hold a JSON object, found {type(data).__name__}")
    missing = [key for key in ("encoder", "num_layers", "metric", "matrix", "groups") if key not in data]
    if missing:
        raise UserError(f"LRS file '{path}' lacks {', '.join(missing)}")
    _check_lrs_groups(data, path)
    return data


def _check_lrs_groups(data: dict, path: Path) -> None:
    """The fields of an lrs.json later stages index into: a positive depth, an L x L matrix, and groups, each with a
    name, a non-empty list of layers in 1..L and a representative among them."""
    depth = data["num_layers"]
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise UserError(f"LRS file '{path}': 'num_layers' must be a positive integer, got {depth!r}")
    matrix = data["matrix"]
    if not isinstance(matrix, list) or len(matrix) != depth or any(
            not isinstance(row, list) or len(row) != depth for row in matrix):
        raise UserError(f"LRS file '{path}': 'matrix' must be {depth} x {depth} (num_layers)")
    groups = data["groups"]
    if not isinstance(groups, list) or not groups:
        raise UserError(f"LRS file '{path}': 'groups' must be a non-empty list")
    for index, group in enumerate(groups):
        where = f"LRS file '{path}': groups[{index}]"
        if not isinstance(group, dict):
            raise UserError(f"{where} must be an object with name, layers and representative")
        lacking = [key for key in ("name", "layers", "representative") if key not in group]
        if lacking:
            raise UserError(f"{where} lacks {', '.join(lacking)}")
        layers = group["layers"]
        if not isinstance(layers, list) or not layers or not all(
                isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= depth for x in layers):
            raise UserError(f"{where}: 'layers' must be a non-empty list of layer numbers in 1..{depth}, "
                            f"got {layers!r}")
        if group["representative"] not in layers:
            raise UserError(f"{where}: representative {group['representative']!r} is not one of its layers")
