"""Search efficiency on replay tables: LRS-seeded TPE + ASHA against random search and grid search.

    .venv/bin/python benchmarks/search_efficiency.py                      # 20 seeds, every table and strategy
    .venv/bin/python benchmarks/search_efficiency.py --seeds 2 --no-save  # quick look

Every run is a real `raylayers.search.tuner.run_search` (Ray Tune + the raylayers searcher + ASHA) with
`--objective table:FILE.parquet`: a trial replays a measured (or synthetic) learning curve instead of training.
Strategies (overrides on the table's space file; every search runs one trial at a time, budget.concurrency 1):
- lrs_tpe_asha: budget.searcher=tpe with the LRS priors (space.priors true: the seeded trials of
  `raylayers.search.space.seeded_candidates`, i.e. the penultimate layer, each representative alone and their concat,
  then budget.prior_trials=2 representative-like draws, then TPE; the seeded order actually used is saved per table),
  ASHA with budget.grace_period = the first curve step (1000) and budget.reduction_factor=3, so the rungs are 1000,
  3000 and 9000 steps, exactly the table's curve steps;
- random: budget.searcher=random (the space shuffled by the seed, no repeats), no early stopping;
- grid: budget.searcher=grid (every configuration in the space's order), no early stopping. The order does not
  depend on the seed: grid runs for two seeds only, to show that, and its statistics are over those two runs.

Metrics of a run, over its trials in finish order (`order`): the number of trials finished up to and including the
first *completed* trial whose score is within 1% (relative) of the best final score of the space's configurations
in the table, and the training steps spent until then (the sum of `steps_trained` of those trials; a trial stopped
by ASHA counts the steps it ran). A run that never gets there within its budget is "not reached". Per strategy and
table: median, 25th and 75th percentiles, min and max over the seeds, with "not reached" counted as infinitely
late (so a percentile that falls on a not-reached run reads "not reached"), and the number of runs that reached.

Runtime: a replayed trial costs ~1-6 s here (a new Tune actor per trial; more when the machine is busy), so by
default (1) a search is stopped once it has reached the target (SIGUSR1, Tune's graceful stop; trials run one at a
time and the searcher never looks ahead, so the prefix that the metrics read is the same as with the full budget;
the per-run counts of trials, pruned trials and steps then cover only that prefix; `--full-budget` runs every search
to its budget), (2) two searches run at once (`--parallel 2`: a second driver process on the same Ray cluster; the
per-run seconds are then wall time under that sharing), and (3) Ray's worker_process_setup_hook imports Tune in
pooled worker processes ahead of time. None of these changes what a search does.

Tables (built here, deterministically, into benchmarks/tables/, with their space files and lrs.json):
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
LRS (all tables): groups shallow 1-12, middle 13-20, deep 21-24 with representatives 3, 18, 23 (the paper); a block
similarity matrix: 1 - 0.03 |i - j| within a group, 0.1 between shallow and the others, 0.45 between middle and deep.

Ray is started once (2 CPUs) and every search reuses it; each search writes to a temporary folder that is removed.
Results: benchmarks/results/search_efficiency.json (the command, seeds, budgets, tables, versions, wall time, every
run's trial sequence and the summary) and benchmarks/results/search_efficiency.png (box plots of trials-to-1%).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "benchmarks" / "tables"
RESULTS = ROOT / "benchmarks" / "results"

STEPS = (1000, 3000, 9000)
GROUPS = (("shallow", list(range(1, 13)), 3), ("middle", list(range(13, 21)), 18), ("deep", list(range(21, 25)), 23))
NUM_LAYERS = 24
TOLERANCE = 0.01  # relative: within 1% of the best

# The paper, Fig. 1b (read off the plot): layer -> (TextVQA %, OCRBench); layers 1-10 are the ranges' midpoints
PAPER_FIG1B = {**{layer: (8.5, 27.5) for layer in range(1, 11)},
               12: (16.6, 70), 14: (23.0, 130), 16: (28.0, 165), 18: (31.4, 200), 19: (18.3, 120),
               20: (32.0, 210), 21: (28.0, 190), 22: (31.0, 205), 23: (33.6, 233), 24: (30.6, 200)}

FUSION_LAYERS = [1, 3, 5, 7, 9, 11, 14, 16, 18, 20, 21, 22, 23, 24]
FUSION_CONNECTORS = ["concat", "dense_sci"]
AMPLITUDE = {"shallow": 0.02, "middle": 0.05, "deep": 0.08}
WIDTH = {"shallow": 4.0, "middle": 2.5, "deep": 1.5}
FUSION_BONUS = {1: 0.0, 2: 0.010, 3: 0.025}
CONNECTOR_OFFSET = {"linear": 0.0, "concat": 0.0, "dense_sci": 0.002}
SURFACE_PEAKS = {"fusion_near_reps": {"shallow": 5, "middle": 16, "deep": 23},
                 "fusion_adversarial": {"shallow": 11, "middle": 14, "deep": 21}}

STRATEGIES = {
    "lrs_tpe_asha": ["budget.searcher=tpe", "space.priors=true", "budget.prior_trials=2",
                     f"budget.grace_period={STEPS[0]}", "budget.reduction_factor=3"],
    "random": ["budget.searcher=random", "budget.grace_period=0"],
    "grid": ["budget.searcher=grid", "budget.grace_period=0"],
}
GRID_SEEDS = 2  # grid ignores the seed: two runs show it


# ================================================================================================ tables
def group_of(layer: int) -> str:
    return next(name for name, members, _ in GROUPS if layer in members)


def noise(*parts) -> np.random.Generator:
    """A generator seeded by the configuration (and table), so every table is the same on every machine."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return np.random.default_rng(int(digest[:16], 16))


def curve(final: float, tau: float, rng: np.random.Generator, relative_noise: float) -> list[tuple[int, float]]:
    """(step, score) at STEPS: the saturating curve scaled to end at `final`, noisy before the last step."""
    end = 1 - math.exp(-STEPS[-1] / tau)
    points = []
    for step in STEPS:
        value = final * (1 - math.exp(-step / tau)) / end
        if step != STEPS[-1]:
            value *= 1 + relative_noise * float(rng.standard_normal())
        points.append((step, float(value)))
    return points


def write_lrs(path: Path) -> Path:
    matrix = np.empty((NUM_LAYERS, NUM_LAYERS))
    for i, j in itertools.product(range(1, NUM_LAYERS + 1), repeat=2):
        gi, gj = group_of(i), group_of(j)
        if gi == gj:
            matrix[i - 1, j - 1] = 1 - 0.03 * abs(i - j)
        elif "shallow" in (gi, gj):
            matrix[i - 1, j - 1] = 0.1
        else:
            matrix[i - 1, j - 1] = 0.45
    data = {"encoder": "openai/clip-vit-large-patch14-336 (synthetic LRS: the paper's groups, block matrix)",
            "num_layers": NUM_LAYERS, "metric": "cosine", "num_images": 0, "matrix": matrix.round(4).tolist(),
            "groups": [{"name": n, "layers": members, "representative": r} for n, members, r in GROUPS]}
    path.write_text(json.dumps(data) + "\n")
    return path


def paper_single_layer_finals() -> dict[int, dict]:
    """layer -> TextVQA, OCRBench (Fig. 1b, gaps interpolated linearly) and the combined score."""
    known = sorted(PAPER_FIG1B)
    finals = {}
    for layer in range(1, NUM_LAYERS + 1):
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


def single_layer_rows() -> list[dict]:
    rows = []
    for layer, final in paper_single_layer_finals().items():
        rng = noise("paper_single_layer", layer)
        for step, score in curve(final["score"], 2000.0, rng, 0.03):
            rows.append({"layers": [layer], "connector": "linear", "step": step, "score": score,
                         "score_ocr": final["score"], "textvqa": final["textvqa"], "ocrbench": final["ocrbench"]})
    return rows


def fusion_final(surface: str, layers: tuple[int, ...], connector: str) -> float:
    peaks = SURFACE_PEAKS[surface]
    score = 0.20 + FUSION_BONUS[len(layers)] + CONNECTOR_OFFSET[connector]
    for layer in layers:
        g = group_of(layer)
        score += AMPLITUDE[g] * math.exp(-(layer - peaks[g]) ** 2 / (2 * WIDTH[g] ** 2))
    return score + 0.001 * float(noise(surface, "final", layers, connector).standard_normal())


def fusion_configurations() -> list[tuple[tuple[int, ...], str]]:
    """Every one-per-group configuration over all 24 layers (the table covers more than the space)."""
    configs = [((layer,), "linear") for layer in range(1, NUM_LAYERS + 1)]
    members = {name: layers for name, layers, _ in GROUPS}
    for n in (2, 3):
        for names in itertools.combinations(members, n):
            for layers in itertools.product(*(members[g] for g in names)):
                configs += [(tuple(sorted(layers)), c) for c in FUSION_CONNECTORS]
    return configs


def fusion_rows(surface: str) -> list[dict]:
    rows = []
    for layers, connector in fusion_configurations():
        final = fusion_final(surface, layers, connector)
        tau = 2000.0 * (1 + 0.1 * (len(layers) - 1))
        for step, score in curve(final, tau, noise(surface, "curve", layers, connector), 0.02):
            rows.append({"layers": list(layers), "connector": connector, "step": step, "score": score})
    return rows


def write_space(path: Path, lrs: Path, space: dict, trials: int) -> Path:
    import yaml

    text = ("# Generated by benchmarks/search_efficiency.py: a replay space (run with --objective table:...)\n"
            "# from the repository root (lrs.file is relative to it).\n"
            + yaml.safe_dump({"name": path.stem, "lrs": {"file": str(lrs.relative_to(ROOT))}, "space": space,
                              "budget": {"trials": trials, "concurrency": 1, "seed": 0}}, sort_keys=False))
    path.write_text(text)
    return path


def build_tables(folder: Path) -> dict[str, dict]:
    """Write the tables, lrs.json and the space files; describe each table (its best, how many are within 1%)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raylayers.lrs import load_lrs
    from raylayers.search import space as spaces
    from raylayers.search.tuner import load_table

    folder.mkdir(parents=True, exist_ok=True)
    lrs = write_lrs(folder / "lrs.json")
    single_space = {"num_layers": [1], "single_connectors": ["linear"], "fusion_connectors": ["concat"]}
    fusion_space = {"num_layers": [1, 2, 3], "one_per_group": True, "layers": FUSION_LAYERS,
                    "single_connectors": ["linear"], "fusion_connectors": FUSION_CONNECTORS}
    specs = {
        "paper_single_layer": (single_layer_rows(), single_space, 24,
                               ("CLIP-L/336 single layers, linear connector; finals = (TextVQA%/100 + "
                                "OCRBench/1000)/2 from the paper's Fig. 1b (1-10 midpoints; 11, 13, 15, 17 "
                                "interpolated); synthetic learning curves")),
        "fusion_near_reps": (fusion_rows("fusion_near_reps"), fusion_space, 40,
                             ("synthetic one-per-group fusion surface, peaks at layers 5/16/23 (near the "
                              "representatives 3/18/23), dense_sci +0.002 over concat, 3-group bonus")),
        "fusion_adversarial": (fusion_rows("fusion_adversarial"), fusion_space, 40,
                               ("synthetic one-per-group fusion surface, peaks at layers 11/14/21 (far from "
                                "the representatives 3/18/23), dense_sci +0.002 over concat, 3-group bonus")),
    }
    described = {}
    for name, (rows, space, trials, description) in specs.items():
        table = folder / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), table)
        space_file = write_space(folder / f"{name}.space.yaml", lrs, space, trials)
        layer_space = spaces.build_layer_space(spaces.SpaceSection(**space), load_lrs(lrs))
        candidates = layer_space.candidates()
        replay = load_table(table)
        seeded = [c.key for c in spaces.seeded_candidates(layer_space, baseline=True)]
        finals = {c.key: float(replay[c.key][-1]["score"]) for c in candidates}
        best_key = max(finals, key=finals.get)
        threshold = finals[best_key] * (1 - TOLERANCE)
        within = sorted((k for k, v in finals.items() if v >= threshold), key=lambda k: -finals[k])
        described[name] = {
            "description": description, "table": str(table.relative_to(ROOT)),
            "space_file": str(space_file.relative_to(ROOT)), "rows": len(rows), "space_size": len(candidates),
            "trials": trials, "steps": list(STEPS), "best_key": best_key, "best_score": finals[best_key],
            "table_best_score": max(float(r[-1]["score"]) for r in replay.values()),
            "threshold": threshold, "within_1pct": {k: finals[k] for k in within},
            "seeded_trials_tpe": seeded, "space_order_first": [c.key for c in candidates[:5]],
            "finals": finals,
        }
    return described


# ================================================================================================ runs
def searcher_repeats(out: Path) -> int | None:
    """repeats_answered from the searcher's own state pickle, when Tune saved one (None otherwise)."""
    import pickle

    saved = sorted(out.glob("tune/**/*.raylayers.pkl"), key=lambda p: p.stat().st_mtime)
    if not saved:
        return None
    with open(saved[-1], "rb") as handle:
        return pickle.load(handle).get("repeats_answered")


def preimport() -> None:
    """Ray's worker_process_setup_hook: import Tune in the pooled worker processes before a trial claims one (each
    trial is a new actor; `import ray.tune` is ~1-2 s of CPU here). Only import time moves; nothing else changes."""
    import pyarrow.parquet  # noqa: F401
    import ray.tune  # noqa: F401

    import raylayers.search.tuner  # noqa: F401


def _watch(path: Path, threshold: float, done: threading.Event, fired: threading.Event) -> None:
    """Stop the search (SIGUSR1: Tune ends the run gracefully) once a completed trial reaches the threshold."""
    from raylayers.search.results import read_results

    while not done.wait(0.2):
        rows = read_results(path)  # a whole version of the file, even while the search replaces it
        if any(r["status"] == "completed" and r["score"] is not None and r["score"] >= threshold for r in rows):
            fired.set()
            os.kill(os.getpid(), signal.SIGUSR1)
            return


def run_one(table: dict, strategy: str, seed: int, work: Path, stop_at_target: bool) -> dict:
    from raylayers.search.results import read_results
    from raylayers.search.tuner import run_search

    out = work / f"{Path(table['table']).stem}_{strategy}_{seed}"
    overrides = STRATEGIES[strategy] + [f"budget.seed={seed}", f"budget.trials={table['trials']}",
                                        f"lrs.file={TABLES / 'lrs.json'}"]
    log = io.StringIO()
    done, fired = threading.Event(), threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: None)  # Tune installs its own; a late signal must not kill us
    watcher = threading.Thread(target=_watch, args=(out / "results.parquet", table["threshold"], done, fired),
                               daemon=True)
    if stop_at_target:
        watcher.start()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log):
            summary = run_search(ROOT / table["space_file"], out, objective=f"table:{ROOT / table['table']}",
                                 overrides=overrides)
    finally:
        done.set()
    seconds = time.perf_counter() - started
    rows = sorted(read_results(out / "results.parquet"), key=lambda r: r["order"])
    trials, steps, reached = 0, 0, False
    for row in rows:
        trials += 1
        steps += int(row["steps_trained"] or 0)
        if row["status"] == "completed" and row["score"] is not None and row["score"] >= table["threshold"]:
            reached = True
            break
    completed = [r for r in rows if r["status"] == "completed" and r["score"] is not None]
    record = {
        "strategy": strategy, "seed": seed, "overrides": overrides, "seconds": round(seconds, 2),
        "reached": reached, "trials_to_target": trials if reached else None,
        "steps_to_target": steps if reached else None, "stopped_at_target": fired.is_set(),
        "trials": len(rows), "distinct_keys": len({r["key"] for r in rows}),
        "completed": summary["completed"], "pruned": summary["pruned"], "failed": summary["failed"],
        "total_steps": sum(int(r["steps_trained"] or 0) for r in rows),
        "best_found": max((r["score"] for r in completed), default=None),
        "best_found_key": max(completed, key=lambda r: r["score"])["key"] if completed else None,
        "repeats_answered": searcher_repeats(out),
        "searcher_state_files": len(list(out.glob("tune/*/*.raylayers.pkl"))),
        "sequence": [{"key": r["key"], "status": r["status"], "steps": int(r["steps_trained"] or 0),
                      "score": r["score"], "probe_score": r["probe_score"], "error": r["error"]} for r in rows],
    }
    shutil.rmtree(out, ignore_errors=True)
    return record


def git_state() -> dict:
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty_raylayers": git("status", "--porcelain", "raylayers")}


def describe(run: dict) -> str:
    where = (f"trial {run['trials_to_target']} ({run['steps_to_target']} steps)" if run["reached"]
             else "not reached")
    best = "-" if run["best_found"] is None else f"{run['best_found']:.4f}"
    return (f"{run['table']} {run['strategy']} seed {run['seed']}: {where}; {run['trials']} trials "
            f"({run['distinct_keys']} distinct{', stopped at the target' if run['stopped_at_target'] else ''}), "
            f"{run['pruned']} pruned, {run['failed']} failed, repeats answered {run['repeats_answered']}, "
            f"best {best}, {run['seconds']:.1f}s")


def run_shard(jobs: list, tables: dict, work: Path, stop_at_target: bool, sink: Path, tag: str) -> None:
    """Run searches one after the other; append each run's record to `sink` (JSON lines)."""
    for table, strategy, seed, number, total in jobs:
        run = {"table": table, **run_one(tables[table], strategy, seed, work, stop_at_target)}
        with open(sink, "a") as handle:
            handle.write(json.dumps(run, default=str) + "\n")
        print(f"{tag}[{number}/{total}] {describe(run)}", flush=True)


def quiet_ray_loggers() -> None:
    import logging

    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)


def helper_main(shard_file: str) -> None:
    """A second driver on the same Ray cluster (--parallel): runs its share of the plan."""
    import ray

    shard = json.loads(Path(shard_file).read_text())
    ray.init(address=shard["address"], logging_level="ERROR", log_to_driver=False,
             runtime_env={"worker_process_setup_hook": preimport})
    quiet_ray_loggers()
    run_shard(shard["jobs"], shard["tables"], Path(shard["work"]), shard["stop_at_target"], Path(shard["sink"]),
              shard["tag"])


# ================================================================================================ summary
def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile where inf (not reached) stays inf once it carries any weight."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    if weight == 0 or ordered[low] == ordered[high]:
        return ordered[low]
    if math.isinf(ordered[high]):
        return math.inf
    return ordered[low] + weight * (ordered[high] - ordered[low])


def statistics(values: list[float]) -> dict:
    finite = [v for v in values if math.isfinite(v)]
    stats = {f"p{q}": percentile(values, q) for q in (25, 50, 75)}
    stats.update(min=min(values), max=max(values), reached=len(finite), runs=len(values),
                 mean_reached=float(np.mean(finite)) if finite else None)
    return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in stats.items()}


def summarise(runs: list[dict]) -> dict:
    summary = {}
    for run in runs:
        summary.setdefault(run["table"], {}).setdefault(run["strategy"], []).append(run)
    out = {}
    for table, strategies in summary.items():
        out[table] = {}
        for strategy, group in strategies.items():
            trials = [r["trials_to_target"] if r["reached"] else math.inf for r in group]
            steps = [r["steps_to_target"] if r["reached"] else math.inf for r in group]
            out[table][strategy] = {
                "runs": len(group), "reached": sum(r["reached"] for r in group),
                "trials_to_target": statistics(trials), "steps_to_target": statistics(steps),
                "trials_run_mean": float(np.mean([r["trials"] for r in group])),
                "pruned_mean": float(np.mean([r["pruned"] for r in group])),
                "failed_total": sum(r["failed"] for r in group),
                "total_steps_mean": float(np.mean([r["total_steps"] for r in group])),
                "best_found_median": float(np.median([r["best_found"] for r in group if r["best_found"] is not None])),
                "seconds_mean": float(np.mean([r["seconds"] for r in group])),
            }
    return out


def fmt(stats: dict, scale: float = 1.0, digits: int = 1) -> str:
    def one(v):
        return "NR" if v is None else f"{v / scale:.{digits}f}"

    return f"{one(stats['p50'])} [{one(stats['p25'])}-{one(stats['p75'])}] (min {one(stats['min'])}, " \
           f"max {one(stats['max'])})"


def print_summary(summary: dict, stream=sys.stdout) -> None:
    print(f"\n{'table':<20} {'strategy':<13} {'reached':>8}  trials to 1%: median [p25-p75] (min, max)   "
          "steps (k) to 1%: median [p25-p75] (min, max)", file=stream)
    for table, strategies in summary.items():
        for strategy, s in strategies.items():
            print(f"{table:<20} {strategy:<13} {s['reached']:>3}/{s['runs']:<4}  "
                  f"{fmt(s['trials_to_target']):<40} {fmt(s['steps_to_target'], 1000, 0)}", file=stream)


def plot(runs: list[dict], tables: dict, path: Path) -> None:
    """Per table, per strategy: every run's trials-to-1% (not reached: drawn in an "NR" band above the budget) and
    a box from the censored percentiles (a box edge or median in the band means that percentile was not reached)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(tables)
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names), 4.2), squeeze=False)
    for ax, table in zip(axes[0], names):
        budget = tables[table]["trials"]
        nr_level = budget * 1.12
        strategies = [s for s in STRATEGIES if any(r["table"] == table and r["strategy"] == s for r in runs)]
        boxes, labels = [], []
        for i, strategy in enumerate(strategies, start=1):
            group = [r for r in runs if r["table"] == table and r["strategy"] == strategy]
            values = [r["trials_to_target"] if r["reached"] else math.inf for r in group]

            levels = {q: percentile(values, q) for q in (0, 25, 50, 75, 100)}
            levels = {q: nr_level if math.isinf(v) else v for q, v in levels.items()}
            boxes.append({"med": levels[50], "q1": levels[25], "q3": levels[75], "whislo": levels[0],
                          "whishi": levels[100], "fliers": [], "label": strategy})
            shown = [nr_level if math.isinf(v) else v for v in values]
            jitter = np.linspace(-0.12, 0.12, len(shown)) if len(shown) > 1 else np.zeros(1)
            ax.scatter(i + jitter, shown, s=10, alpha=0.6, zorder=3)
            labels.append(f"{strategy}\n{sum(r['reached'] for r in group)}/{len(group)} reached")
        ax.bxp(boxes, showfliers=False)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
        ax.axhline(budget, color="grey", linestyle=":", linewidth=1)
        ax.axhspan(budget * 1.06, budget * 1.18, color="grey", alpha=0.12)
        ax.text(0.55, nr_level, "NR", va="center", fontsize=8, color="dimgrey")
        ax.set_ylim(0, budget * 1.2)
        ax.set_title(f"{table}\n{tables[table]['space_size']} configurations, budget {budget} trials "
                     f"(dotted), {len(tables[table]['within_1pct'])} within 1%", fontsize=9)
        ax.set_ylabel("trials until within 1% of the best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ================================================================================================ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per strategy (0..N-1; grid: at most 2)")
    parser.add_argument("--tables", default="paper_single_layer,fusion_near_reps,fusion_adversarial")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--parallel", type=int, default=2,
                        help="searches at once (extra drivers on the same Ray cluster; each search is sequential)")
    parser.add_argument("--full-budget", action="store_true",
                        help="run every search to its budget (default: stop a search once it reached the target)")
    parser.add_argument("--no-save", action="store_true", help="print only; write no results")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw benchmarks/results/search_efficiency.png from the saved JSON")
    parser.add_argument("--helper", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.helper:
        helper_main(args.helper)
        return
    if args.plot_only:
        saved = json.loads((RESULTS / "search_efficiency.json").read_text())
        plot(saved["runs"], saved["tables"], RESULTS / "search_efficiency.png")
        return

    import optuna
    import ray

    started = time.perf_counter()
    git_at_start = git_state()
    tables = build_tables(TABLES)
    for name, t in tables.items():
        print(f"table {name}: {t['space_size']} configurations in the space, best {t['best_key']} "
              f"{t['best_score']:.4f}, {len(t['within_1pct'])} within 1% (>= {t['threshold']:.4f}), "
              f"budget {t['trials']} trials", flush=True)
    ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", logging_level="ERROR",
             log_to_driver=False, runtime_env={"worker_process_setup_hook": preimport})
    quiet_ray_loggers()
    chosen_tables = args.tables.split(",")
    plan = [(table, strategy, seed) for table in chosen_tables for strategy in args.strategies.split(",")
            for seed in range(min(args.seeds, GRID_SEEDS) if strategy == "grid" else args.seeds)]
    plan = [(*job, number, len(plan)) for number, job in enumerate(plan, start=1)]
    light = {name: {k: v for k, v in t.items() if k not in ("finals", "within_1pct")} for name, t in tables.items()}
    work = Path(tempfile.mkdtemp(prefix="search_efficiency_"))
    sinks = [work / f"runs_{k}.jsonl" for k in range(args.parallel)]
    helpers = []
    try:
        for k in range(1, args.parallel):
            shard = {"address": ray.get_runtime_context().gcs_address, "jobs": plan[k::args.parallel],
                     "tables": light, "work": str(work), "stop_at_target": not args.full_budget,
                     "sink": str(sinks[k]), "tag": f"(driver {k}) "}
            (work / f"shard_{k}.json").write_text(json.dumps(shard))
            helpers.append(subprocess.Popen([sys.executable, __file__, "--helper", str(work / f"shard_{k}.json")]))
        run_shard(plan[0::args.parallel], light, work, not args.full_budget, sinks[0],
                  "(driver 0) " if args.parallel > 1 else "")
        codes = [helper.wait() for helper in helpers]
        if any(codes):
            raise SystemExit(f"a helper driver failed (exit codes {codes})")
        runs = [json.loads(line) for sink in sinks if sink.is_file() for line in sink.read_text().splitlines()]
    finally:
        for helper in helpers:
            if helper.poll() is None:
                helper.terminate()
        shutil.rmtree(work, ignore_errors=True)
    order = {(t, s, seed): n for t, s, seed, n, _ in plan}
    runs.sort(key=lambda r: order[(r["table"], r["strategy"], r["seed"])])
    summary = summarise(runs)
    print_summary(summary)
    wall = time.perf_counter() - started
    print(f"\nwall time {wall:.0f}s for {len(runs)} searches ({args.parallel} at once)", flush=True)
    if args.no_save:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(runs, {t: tables[t] for t in chosen_tables}, RESULTS / "search_efficiency.png")
    text = io.StringIO()
    print_summary(summary, text)
    payload = {
        "command": " ".join([".venv/bin/python", "benchmarks/search_efficiency.py", *sys.argv[1:]]),
        "seeds": list(range(args.seeds)), "grid_seeds": list(range(min(args.seeds, GRID_SEEDS))),
        "strategies": STRATEGIES, "tolerance": TOLERANCE, "parallel_searches": args.parallel,
        "stopped_at_target": not args.full_budget,
        "metric": "trials (and steps_trained summed) in finish order until the first completed trial with score "
                  ">= best * (1 - tolerance), best = the best final score over the space's configurations",
        "tables": {name: {k: v for k, v in t.items() if k != "finals"} for name, t in tables.items()},
        "versions": {"ray": ray.__version__, "optuna": optuna.__version__, "python": sys.version.split()[0],
                     "numpy": np.__version__},
        "git_at_start": git_at_start, "git_at_end": git_state(),
        "machine": {"cpus": os.cpu_count(), "ray_num_cpus": 2}, "wall_seconds": round(wall, 1),
        "summary": summary, "summary_text": text.getvalue(), "runs": runs,
    }
    (RESULTS / "search_efficiency.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"wrote {RESULTS / 'search_efficiency.json'} and {RESULTS / 'search_efficiency.png'}")


if __name__ == "__main__":
    main()
