"""Replay tables and the LRS files that go with them, for `raylayers search --objective table:FILE.parquet`.

A replay table lets a search run without training: each trial replays a configuration's measured (or synthetic)
learning curve. Its format (DESIGN.md): a row per configuration and step with `layers` (positive ints), `connector`,
`score`, optional `score_<category>`, optional `step` and optional `visual_tokens` / `connector_params` (the
configuration's cost, for `objective.cost`). The tests and `benchmarks/search_efficiency.py` build their
tables and LRS files here, with the same functions:
- `write_lrs`: an `lrs.json` as `raylayers lrs` writes it (groups, representatives, a similarity matrix from a rule);
- `write_table`: rows to a Parquet replay table; `single_layer_table`: the tests' small table (layer 4 is best);
- `build_tables`: the benchmark's six tables, their space files and lrs.json, each described (its best
  configuration, which ones are within the tolerance of it); every row carries its configuration's cost
  (`with_costs`: `visual_tokens` and `connector_params` for CLIP-L/336, 24 x 24 = 576 patches of width 1024, and an
  LM of width 2048 and 24 layers like MobileLLaMA-1.4B, mlp2x_gelu projector), for `objective.cost`.

The benchmark's tables (built deterministically, the same bytes on every machine, into benchmarks/tables/, with
their space files and lrs.json):
1. paper_single_layer: CLIP-L/336's 24 layers alone with the linear connector. Final scores from the paper's Fig. 1b
   reading (MobileLLaMA-1.4B): score = (TextVQA% / 100 + OCRBench / 1000) / 2. Layers 1-10 are given as a range
   ("8-9", "25-30"): they get the midpoints 8.5 and 27.5. Layers absent from the figure's table (11, 13, 15, 17) are
   interpolated linearly between their neighbours (layer 11 between the layer-10 midpoint and layer 12). Only the
   finals come from the paper: the learning curves are synthetic, score(step) = final * (1 - exp(-step / tau)) /
   (1 - exp(-9000 / tau)) at steps 1000, 3000, 9000 with tau = 2000, times (1 + 0.03 z) at the two intermediate
   steps (z standard normal, seeded per configuration), so the value at 9000 steps is the paper's exactly.
   Space: space.num_layers [1], space.single_connectors [linear]; budget.trials 24 (= the space, so grid finishes).
2. fusion_near_reps and fusion_adversarial: synthetic fusion surfaces over the same 24 layers, one layer per group
   (num_layers [1, 2, 3], one_per_group, single connector linear, fusion connectors concat and dense_sci):
       score = 0.20 + sum over the chosen layers l of A_g * exp(-(l - peak_g)^2 / (2 w_g^2))   (g = the group of l)
                    + fusion bonus (0 / 0.010 / 0.025 for 1 / 2 / 3 layers) + connector offset (dense_sci +0.002)
                    + 0.001 z (z standard normal, seeded per configuration)
   with A = 0.02 / 0.05 / 0.08 and w = 4 / 2.5 / 1.5 for shallow / middle / deep. fusion_near_reps peaks at layers 5,
   16 and 23 (the representatives are 3, 18, 23: the paper's claim that the optimum is near them); fusion_adversarial
   peaks at 11, 14 and 21 (as far from the representatives as the candidate layers allow: the priors point the
   wrong way). Learning curves as above with tau = 2000 * (1 + 0.1 (n - 1)) for n layers and 2% noise.
   The tables hold every configuration over all 24 layers; the space restricts the candidates with space.layers to
   the odd shallow layers 1-11, the even middle layers 14-20 and all deep layers 21-24 (14 layers, 334
   configurations: 14 singles, 128 pairs, 192 triples), budget.trials 40, so grid (singles first, then pairs, then
   triples) cannot reach a triple within the budget.
3. paper_single_vision_centric and paper_single_hallucination: the same 24 single layers, objective
   (1 - w) x the paper's score above (OCR) + w x a synthetic category curve base + height exp(-(l - peak)^2 /
   (2 width^2)) (the paper's Fig. 1b has no per-layer vision-centric or hallucination figures): vision-centric
   0.25 + 0.20 at peak 16, width 2.5, w 0.65 (best layer 16); hallucination 0.30 + 0.20 at peak 12, width 3,
   w 0.70 (best layer 13). Every row carries score_ocr, score_vision_centric, score_hallucination and score_general
   (0.30 + 0.10 at peak 20, width 4), so a search's per-category recommendation has four categories to rank.
4. fusion_four_connectors: as the fusion surfaces above with peaks 7 / 16 / 22 (the shallow peak 4 layers from the
   shallow representative 3), a sharper, higher shallow term (amplitude 0.04, width 2.5) and four fusion connectors
   (concat 0, dense_sci +0.002, dense_dci -0.003, mmfuser +0.005): 14 singles + 4 x 160 fusions = 654
   configurations, budget.trials 40.
LRS (all tables): groups shallow 1-12, middle 13-20, deep 21-24 with representatives 3, 18, 23 (the paper); a block
similarity matrix: 1 - 0.03 |i - j| within a group, 0.1 between shallow and the others, 0.45 between middle and deep.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Groups = Sequence[tuple[str, Sequence[int], int]]  # (name, layers, representative) per group
Similarity = Callable[[int, int, str | None, str | None], float]  # (i, j, group of i, group of j) -> similarity

TOY_NUM_LAYERS = 6
TOY_GROUPS: Groups = (("shallow", [1, 2], 1), ("middle", [3, 4], 4), ("deep", [5, 6], 5))  # the tests' encoder

# The benchmark's encoder: CLIP-L/336, 24 layers in the paper's groups, and the steps of every synthetic curve
PAPER_NUM_LAYERS = 24
PAPER_GROUPS: Groups = (("shallow", list(range(1, 13)), 3), ("middle", list(range(13, 21)), 18),
                        ("deep", list(range(21, 25)), 23))
PAPER_GROUP_OF = {layer: name for name, layers, _ in PAPER_GROUPS for layer in layers}
PAPER_LRS_ENCODER = "openai/clip-vit-large-patch14-336 (synthetic LRS: the paper's groups, block matrix)"
CURVE_STEPS = (1000, 3000, 9000)

# The paper, Fig. 1b (read off the plot): layer -> (TextVQA %, OCRBench); layers 1-10 are the ranges' midpoints
PAPER_FIG1B = {**{layer: (8.5, 27.5) for layer in range(1, 11)},
               12: (16.6, 70), 14: (23.0, 130), 16: (28.0, 165), 18: (31.4, 200), 19: (18.3, 120),
               20: (32.0, 210), 21: (28.0, 190), 22: (31.0, 205), 23: (33.6, 233), 24: (30.6, 200)}

# The synthetic fusion surfaces (the module docstring gives the formula)
FUSION_CANDIDATE_LAYERS = [1, 3, 5, 7, 9, 11, 14, 16, 18, 20, 21, 22, 23, 24]
FUSION_CONNECTORS = ["concat", "dense_sci"]
SURFACE_AMPLITUDE = {"shallow": 0.02, "middle": 0.05, "deep": 0.08}
SURFACE_WIDTH = {"shallow": 4.0, "middle": 2.5, "deep": 1.5}
FUSION_BONUS = {1: 0.0, 2: 0.010, 3: 0.025}
CONNECTOR_OFFSET = {"linear": 0.0, "concat": 0.0, "dense_sci": 0.002}
SURFACE_PEAKS = {"fusion_near_reps": {"shallow": 5, "middle": 16, "deep": 23},
                 "fusion_adversarial": {"shallow": 11, "middle": 14, "deep": 21},
                 "fusion_four_connectors": {"shallow": 7, "middle": 16, "deep": 22}}
# fusion_four_connectors: four fusion connectors, the best (mmfuser) not the first, and a shallow peak 4 layers from
# the shallow representative (3), sharper and higher than the other surfaces' (amplitude 0.04, width 2.5), so that
# the shallow layer matters beyond the 1% tolerance
FOUR_CONNECTORS = ["concat", "dense_sci", "dense_dci", "mmfuser"]
FOUR_CONNECTOR_OFFSET = {"linear": 0.0, "concat": 0.0, "dense_sci": 0.002, "dense_dci": -0.003, "mmfuser": 0.005}

# The single-layer objectives whose best layer is not the penultimate: a weighted mean of the paper's OCR score
# (above) and a synthetic category curve over layers, base + height * exp(-(layer - peak)^2 / (2 width^2))
# (synthetic: the paper's Fig. 1b has no per-layer vision-centric or hallucination figures to read):
# name -> (category, base, height, peak, width, weight of the category)
SINGLE_OBJECTIVES = {"paper_single_vision_centric": ("vision_centric", 0.25, 0.20, 16, 2.5, 0.65),
                     "paper_single_hallucination": ("hallucination", 0.30, 0.20, 12, 3.0, 0.70)}
CATEGORY_CURVES = {"vision_centric": (0.25, 0.20, 16, 2.5), "hallucination": (0.30, 0.20, 12, 3.0),
                   "general": (0.30, 0.10, 20, 4.0)}


# ================================================================================================ LRS files
def same_group_similarity(i: int, j: int, group_i: str | None, group_j: str | None) -> float:
    """1 on the diagonal, 0.9 within a group, 0.5 elsewhere: the tests' LRS, whose groups are plain to see."""
    if i == j:
        return 1.0
    return 0.9 if group_i is not None and group_i == group_j else 0.5


def paper_block_similarity(i: int, j: int, group_i: str | None, group_j: str | None) -> float:
    """The benchmark's block matrix: 1 - 0.03 |i - j| within a group, 0.1 between shallow and the others, 0.45
    between middle and deep."""
    if group_i == group_j:
        return 1 - 0.03 * abs(i - j)
    if "shallow" in (group_i, group_j):
        return 0.1
    return 0.45


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


# ================================================================================================ curves
def seeded_rng(*parts) -> np.random.Generator:
    """A generator seeded by the configuration (and table), so every table is the same on every machine."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return np.random.default_rng(int(digest[:16], 16))


def learning_curve(final: float, tau: float, rng: np.random.Generator,
                   relative_noise: float) -> list[tuple[int, float]]:
    """(step, score) at CURVE_STEPS: final * (1 - exp(-step / tau)) / (1 - exp(-last step / tau)), times
    (1 + relative_noise z) before the last step, so the curve ends at `final` exactly."""
    end = 1 - math.exp(-CURVE_STEPS[-1] / tau)
    points = []
    for step in CURVE_STEPS:
        value = final * (1 - math.exp(-step / tau)) / end
        if step != CURVE_STEPS[-1]:
            value *= 1 + relative_noise * float(rng.standard_normal())
        points.append((step, float(value)))
    return points


# ================================================================================================ paper_single_layer
def paper_single_layer_finals() -> dict[int, dict]:
    """layer -> TextVQA, OCRBench (Fig. 1b, gaps interpolated linearly), the combined score and its source."""
    known = sorted(PAPER_FIG1B)
    finals = {}
    for layer in range(1, PAPER_NUM_LAYERS + 1):
        if layer in PAPER_FIG1B:
            textvqa, ocr = PAPER_FIG1B[layer]
            source = "paper" if layer > 10 else "paper (range midpoint)"
        else:
            below = max(k for k in known if k < layer)
            above = min(k for k in known if k > layer)
            t = (layer - below) / (above - below)
            textvqa, ocr = (PAPER_FIG1B[below][i] + t * (PAPER_FIG1B[above][i] - PAPER_FIG1B[below][i])
                            for i in range(2))
            source = f"interpolated ({below}-{above})"
        finals[layer] = {"textvqa": textvqa, "ocrbench": ocr, "score": (textvqa / 100 + ocr / 1000) / 2,
                         "source": source}
    return finals


def paper_single_layer_rows() -> list[dict]:
    """The paper_single_layer table: each layer's synthetic curve (tau 2000, 3% noise) ending at its final."""
    rows = []
    for layer, final in paper_single_layer_finals().items():
        rng = seeded_rng("paper_single_layer", layer)
        for step, score in learning_curve(final["score"], 2000.0, rng, 0.03):
            rows.append({"layers": [layer], "connector": "linear", "step": step, "score": score,
                         "score_ocr": final["score"], "textvqa": final["textvqa"], "ocrbench": final["ocrbench"]})
    return rows


def category_curve(category: str, layer: int) -> float:
    base, height, peak, width = CATEGORY_CURVES[category]
    return base + height * math.exp(-(layer - peak) ** 2 / (2 * width ** 2))


def paper_single_objective_rows(name: str) -> list[dict]:
    """A single-layer table whose objective weighs a synthetic category (SINGLE_OBJECTIVES) against the paper's
    OCR score; every row carries score_ocr, score_vision_centric, score_hallucination and score_general."""
    category, _, _, _, _, weight = SINGLE_OBJECTIVES[name]
    rows = []
    for layer, final in paper_single_layer_finals().items():
        categories = {"ocr": final["score"], **{c: category_curve(c, layer) for c in CATEGORY_CURVES}}
        score = (1 - weight) * categories["ocr"] + weight * categories[category]
        rng = seeded_rng(name, layer)
        for step, value in learning_curve(score, 2000.0, rng, 0.03):
            rows.append({"layers": [layer], "connector": "linear", "step": step, "score": value,
                         **{f"score_{c}": v for c, v in categories.items()}})
    return rows


# ================================================================================================ fusion surfaces
def fusion_final(surface: str, layers: tuple[int, ...], connector: str) -> float:
    """The final score of a configuration on a synthetic fusion surface (fusion_near_reps, fusion_adversarial,
    fusion_four_connectors)."""
    peaks = SURFACE_PEAKS[surface]
    four = surface == "fusion_four_connectors"
    offsets = FOUR_CONNECTOR_OFFSET if four else CONNECTOR_OFFSET
    amplitude = {**SURFACE_AMPLITUDE, "shallow": 0.04} if four else SURFACE_AMPLITUDE
    width = {**SURFACE_WIDTH, "shallow": 2.5} if four else SURFACE_WIDTH
    score = 0.20 + FUSION_BONUS[len(layers)] + offsets[connector]
    for layer in layers:
        group = PAPER_GROUP_OF[layer]
        score += amplitude[group] * math.exp(-(layer - peaks[group]) ** 2 / (2 * width[group] ** 2))
    return score + 0.001 * float(seeded_rng(surface, "final", layers, connector).standard_normal())


def fusion_configurations(connectors: Sequence[str] = FUSION_CONNECTORS) -> list[tuple[tuple[int, ...], str]]:
    """Every one-per-group configuration over all 24 layers (the table covers more than the space)."""
    configs = [((layer,), "linear") for layer in range(1, PAPER_NUM_LAYERS + 1)]
    members = {name: layers for name, layers, _ in PAPER_GROUPS}
    for n in (2, 3):
        for names in itertools.combinations(members, n):
            for layers in itertools.product(*(members[g] for g in names)):
                configs += [(tuple(sorted(layers)), c) for c in connectors]
    return configs


def fusion_rows(surface: str) -> list[dict]:
    """A fusion surface's table: each configuration's curve (tau 2000 (1 + 0.1 (n - 1)), 2% noise)."""
    rows = []
    connectors = FOUR_CONNECTORS if surface == "fusion_four_connectors" else FUSION_CONNECTORS
    for layers, connector in fusion_configurations(connectors):
        final = fusion_final(surface, layers, connector)
        tau = 2000.0 * (1 + 0.1 * (len(layers) - 1))
        for step, score in learning_curve(final, tau, seeded_rng(surface, "curve", layers, connector), 0.02):
            rows.append({"layers": list(layers), "connector": connector, "step": step, "score": score})
    return rows


# ================================================================================== the benchmark's tables
def write_paper_lrs(path: Path) -> Path:
    """The benchmark's lrs.json: the paper's groups of CLIP-L/336's 24 layers, the block similarity matrix."""
    return write_lrs(path, PAPER_GROUPS, PAPER_NUM_LAYERS, paper_block_similarity, encoder=PAPER_LRS_ENCODER,
                     num_images=0, newline_at_end=True)


def write_space(path: Path, lrs: Path, space: dict, trials: int, root: Path) -> Path:
    """A replay space file named after its table: one trial at a time, seed 0, lrs.file relative to `root`."""
    import yaml

    # The header names the benchmark: it is what (re)writes benchmarks/tables/ and runs these spaces.
    text = ("# Generated by benchmarks/search_efficiency.py: a replay space (run with --objective table:...)\n"
            "# from the repository root (lrs.file is relative to it).\n"
            + yaml.safe_dump({"name": path.stem, "lrs": {"file": str(lrs.relative_to(root))}, "space": space,
                              "budget": {"trials": trials, "concurrency": 1, "seed": 0}}, sort_keys=False))
    path.write_text(text)
    return path


def table_specs() -> dict[str, tuple[list[dict], dict, int, str]]:
    """name -> (rows, space section, trial budget, description) of each of the benchmark's tables."""
    single_space = {"num_layers": [1], "single_connectors": ["linear"], "fusion_connectors": ["concat"]}
    fusion_space = {"num_layers": [1, 2, 3], "one_per_group": True, "layers": FUSION_CANDIDATE_LAYERS,
                    "single_connectors": ["linear"], "fusion_connectors": FUSION_CONNECTORS}
    return {
        "paper_single_layer": (paper_single_layer_rows(), single_space, 24,
                               ("CLIP-L/336 single layers, linear connector; finals = (TextVQA%/100 + "
                                "OCRBench/1000)/2 from the paper's Fig. 1b (1-10 midpoints; 11, 13, 15, 17 "
                                "interpolated); synthetic learning curves")),
        **{name: (paper_single_objective_rows(name), single_space, 24,
                  (f"CLIP-L/336 single layers, linear connector; objective {1 - spec[5]:.2f} x the paper's OCR score "
                   f"+ {spec[5]:.2f} x a synthetic {spec[0]} curve peaking at layer {spec[3]}"))
           for name, spec in SINGLE_OBJECTIVES.items()},
        "fusion_near_reps": (fusion_rows("fusion_near_reps"), fusion_space, 40,
                             ("synthetic one-per-group fusion surface, peaks at layers 5/16/23 (near the "
                              "representatives 3/18/23), dense_sci +0.002 over concat, 3-group bonus")),
        "fusion_adversarial": (fusion_rows("fusion_adversarial"), fusion_space, 40,
                               ("synthetic one-per-group fusion surface, peaks at layers 11/14/21 (far from "
                                "the representatives 3/18/23), dense_sci +0.002 over concat, 3-group bonus")),
        "fusion_four_connectors": (fusion_rows("fusion_four_connectors"),
                                   {**fusion_space, "fusion_connectors": FOUR_CONNECTORS}, 40,
                                   ("synthetic one-per-group fusion surface, peaks at layers 7/16/22 (shallow peak 4 "
                                    "layers from the representative 3), four connectors (mmfuser +0.005, dense_sci "
                                    "+0.002, concat 0, dense_dci -0.003), 3-group bonus")),
    }


def build_tables(folder: Path, root: Path, tolerance: float) -> dict[str, dict]:
    """Write the benchmark's tables, lrs.json and space files into `folder`; describe each table (paths relative to
    `root`, the repository root): its best configuration in the space, and those within `tolerance` (relative)."""
    folder.mkdir(parents=True, exist_ok=True)
    lrs = write_paper_lrs(folder / "lrs.json")
    described = {}
    for name, (rows, space, trials, description) in table_specs().items():
        table = write_table(folder / f"{name}.parquet", with_costs(rows))
        space_file = write_space(folder / f"{name}.space.yaml", lrs, space, trials, root)
        described[name] = {"description": description, "table": str(table.relative_to(root)),
                           "space_file": str(space_file.relative_to(root)), "rows": len(rows),
                           **describe_table(table, space, lrs, trials, tolerance)}
    return described


def with_costs(rows: list[dict], dims=None, projector: str = "mlp2x_gelu") -> list[dict]:
    """The rows with each configuration's `visual_tokens` and `connector_params` (`raylayers.search.cost`, on the meta
    device) for a model of `dims` (default: the benchmark's CLIP-L/336 and 2048-wide, 24-layer LM) and the
    training recipes' default projector, so `objective.cost` can replay them."""
    from raylayers.search.cost import PAPER_DIMS, connector_cost

    return [{**row, **connector_cost(row["connector"], row["layers"], dims or PAPER_DIMS, projector)} for row in rows]


def describe_table(table: Path, space: dict, lrs: Path, trials: int, tolerance: float) -> dict:
    """What a search over `space` can reach in `table`: the best final score, the threshold within `tolerance` of
    it and the configurations at or above it, the seeded order of the LRS priors, the space's first configurations."""
    from raylayers.lrs import load_lrs
    from raylayers.search import space as spaces
    from raylayers.search.trial import load_table

    layer_space = spaces.build_layer_space(spaces.SpaceSection(**space), load_lrs(lrs))
    candidates = layer_space.candidates()
    replay = load_table(table)
    seeded = [c.key for c in spaces.seeded_candidates(layer_space, baseline=True)]
    finals = {c.key: float(replay[c.key][-1]["score"]) for c in candidates}
    best_key = max(finals, key=finals.get)
    threshold = finals[best_key] * (1 - tolerance)
    within = sorted((k for k, v in finals.items() if v >= threshold), key=lambda k: -finals[k])
    return {"space_size": len(candidates), "trials": trials, "steps": list(CURVE_STEPS), "best_key": best_key,
            "best_score": finals[best_key],
            "table_best_score": max(float(r[-1]["score"]) for r in replay.values()),
            "exhaustive_steps": len(candidates) * CURVE_STEPS[-1],
            "threshold": threshold, "within_1pct": {k: finals[k] for k in within},
            "seeded_trials_tpe": seeded, "space_order_first": [c.key for c in candidates[:5]], "finals": finals}
