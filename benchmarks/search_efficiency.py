"""Search efficiency on replay tables: the geometry searcher against stock Ray Tune + Optuna + ASHA, BOHB, random, grid.

    .venv/bin/python benchmarks/search_efficiency.py                      # 20 seeds, every table and strategy
    .venv/bin/python benchmarks/search_efficiency.py --seeds 2 --no-save  # quick look
    .venv/bin/python benchmarks/search_efficiency.py --plot-only          # figures and comparison from the saved runs

Every run is a real `raylayers.search.tuner.run_search` (Ray Tune, a searcher, ASHA) with
`--objective table:FILE.parquet`: a trial replays a measured (or synthetic) learning curve instead of training.
Strategies (overrides on the table's space file; every search runs one trial at a time, budget.concurrency 1), all
with ASHA at budget.grace_period = the first curve step (1000) and reduction factor 3 (rungs 1000, 3000, 9000: the
tables' curve steps) except random and grid:
- geometry_asha: budget.searcher=geometry, the LRS priors (the seeded trials of
  `raylayers.search.space.seeded_candidates`, i.e. the penultimate layer, each representative alone and their
  concat, then budget.prior_trials=2 representative-like draws), then the Gaussian process over layer points
  (`raylayers.search.geometry`) fit on the trials' scores at the first rung, with screening
  (`raylayers.search.stopping.ScreenThenPromote`, budget.screen=8): every trial pauses at 1000 steps, and after 8
  screens the best paused one is resumed to 9000, then one more per 3 further screens (these searches run with
  `replay_checkpoints`, so a resumed trial goes on where it paused);
- geometry_stop: the same searcher with budget.screen=0, i.e. the model on completed and extrapolated pruned scores
  and ASHA (stopping, with the geometry searcher's second opinion) instead of screening (not in the default run);
- lrs_tpe_asha: the previous default, budget.searcher=tpe with the same priors, then TPE (not in the default run);
- stock_tpe_asha: what a Tune user writes: `OptunaSearch` with default settings (TPE, seeded) over the same
  define-by-run space (`raylayers.search.searcher.define_configuration`), `ASHAScheduler`; no priors, no repeat
  check (a repeated configuration is trained again and counted), an ASHA-stopped trial told to Optuna as complete;
- bohb: `TuneBOHB` (hpbandster, ConfigSpace; skipped with a printed line when absent) over a flat categorical space
  (which groups, a layer per group, a fusion connector) with `HyperBandForBOHB` (max_t 9000, reduction factor 3),
  as Ray pairs them; HyperBand pauses trials at its milestones and resumes them from their checkpoints, so these
  searches run with `replay_checkpoints` (a replay trial reports a checkpoint per step);
- random: budget.searcher=random (the space shuffled by the seed, no repeats), no early stopping;
- grid: budget.searcher=grid (every configuration in the space's order), no early stopping; it ignores the seed, so
  it runs once. The exhaustive sweep of the comparison (every configuration trained in full, the paper's way) is not
  run: it costs the space's size x 9000 steps by construction.

Metrics of a run, over its trials in finish order (`order`; a paused trial has a row from the moment it pauses, and a
paused trial resumed later moves to the end when it finishes): the number of trials up to and including the first
*completed* trial whose score is within 1% (relative) of the best final score of the space's configurations
in the table, and the training steps spent until then (the sum of `steps_trained` of those trials; a trial stopped
by ASHA counts the steps it ran). A run that never gets there within its budget is "not reached". Per strategy and
table: median, 25th and 75th percentiles, min and max over the seeds, with "not reached" counted as infinitely
late (so a percentile that falls on a not-reached run reads "not reached"), and the number of runs that reached;
and the steps with a not-reached run counted (a) as the steps its budget spent and (c) as its full budget, every
trial of it trained in full (the comparison's figures: median steps of each strategy over ours, and the exhaustive
sweep's over ours); and (b) the expected steps (every step of every seed, reached or not, over the seeds that
reached: a strategy that gives up cheaply cannot look cheap by it).

Runtime: a replayed trial cost ~1-6 s with a new Tune actor per trial; replay searches now reuse actors
(`reuse_actors`, a fraction of a second per trial), and by default (1) a search is stopped once it has reached
the target (a Tune `Stopper`,
`raylayers.search.tuner.StopAtScore`: the trial that reached it is the last one; trials run one at a time and the
searcher never looks ahead, so the prefix that the metrics read is the same as with the full budget; the per-run
counts of trials, pruned trials and steps then cover only that prefix; `--full-budget` runs every search to its
budget), (2) two searches run at once (`--parallel 2`: a second driver process on the same Ray cluster; the
per-run seconds are then wall time under that sharing), and
(3) Ray's worker_process_setup_hook imports Tune in pooled worker processes ahead of time. None of these changes
what a search does.

Tables: `raylayers.search.replay.build_tables` writes them, deterministically, into benchmarks/tables/ with their
space files and lrs.json (paper_single_layer: the paper's single-layer finals with synthetic learning curves;
paper_single_vision_centric and paper_single_hallucination: the paper's OCR score weighed against a synthetic
category curve, best at layers 16 and 13; fusion_near_reps, fusion_adversarial and fusion_four_connectors: synthetic
fusion surfaces); how each is built is that module's docstring.

Ray is started once (2 CPUs) and every search reuses it; each search writes to a temporary folder that is removed.
Results: benchmarks/results/search_efficiency.json (the command, seeds, budgets, tables, versions, wall time, every
run's trial sequence, the summary and the comparison), benchmarks/results/search_efficiency.png (box plots of
trials-to-1%) and search_efficiency_steps.png (of steps-to-1%).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from raylayers.search.replay import CURVE_STEPS, build_tables
from raylayers.search.tuner import StopAtScore

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "benchmarks" / "tables"
RESULTS = ROOT / "benchmarks" / "results"

TOLERANCE = 0.01  # relative: within 1% of the best

STRATEGIES = {
    "geometry_asha": ["budget.searcher=geometry", "space.priors=true", "budget.prior_trials=2",
                      f"budget.grace_period={CURVE_STEPS[0]}", "budget.reduction_factor=3"],
    "geometry_stop": ["budget.searcher=geometry", "space.priors=true", "budget.prior_trials=2", "budget.screen=0",
                      f"budget.grace_period={CURVE_STEPS[0]}", "budget.reduction_factor=3"],
    "lrs_tpe_asha": ["budget.searcher=tpe", "space.priors=true", "budget.prior_trials=2",
                     f"budget.grace_period={CURVE_STEPS[0]}", "budget.reduction_factor=3"],
    # stock Ray Tune: OptunaSearch (TPE, default settings) + ASHAScheduler on the same rungs; BOHB (TuneBOHB +
    # the same rungs); the space and scheduler come from `stock_search` (the overrides only set the budget)
    "stock_tpe_asha": ["budget.searcher=tpe", f"budget.grace_period={CURVE_STEPS[0]}", "budget.reduction_factor=3"],
    "bohb": ["budget.searcher=tpe", f"budget.grace_period={CURVE_STEPS[0]}", "budget.reduction_factor=3"],
    "random": ["budget.searcher=random", "budget.grace_period=0"],
    "grid": ["budget.searcher=grid", "budget.grace_period=0"],
}
STOCK = ("stock_tpe_asha", "bohb")
GRID_SEEDS = 1  # grid ignores the seed: it runs once


# ================================================================================================ stock baselines
def bohb_available() -> bool:
    try:
        import ConfigSpace  # noqa: F401
        import hpbandster  # noqa: F401
    except ImportError:
        return False
    return True


class KeyedSearcher:
    """A stock Tune searcher whose configurations are turned into ours (layers, connector, key) for the trial."""

    def __init__(self, inner, translate):
        self.inner, self.translate = inner, translate

    def __getattr__(self, name):  # everything else (on_pause, save, properties...) is the stock searcher's
        return getattr(self.inner, name)

    def suggest(self, trial_id: str):
        config = self.inner.suggest(trial_id)
        return self.translate(config) if isinstance(config, dict) else config


def stock_search(strategy: str, seed: int):
    """The search_factory of a stock baseline: (searcher, scheduler) as a Tune user would write them."""

    def factory(config, layer_space, candidates):
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import Searcher

        from raylayers.search.searcher import define_configuration
        from raylayers.search.space import Candidate

        def keyed(c: dict) -> dict:
            candidate = Candidate(tuple(sorted(int(x) for x in c["layers"])), c["connector"])
            return {"layers": list(candidate.layers), "connector": candidate.connector, "hyperparameters": {},
                    "key": candidate.key}

        scheduler = ASHAScheduler(time_attr="global_step", metric="score", mode="max",
                                  grace_period=config.budget.grace_period,
                                  reduction_factor=config.budget.reduction_factor, max_t=CURVE_STEPS[-1])
        if strategy == "stock_tpe_asha":
            from ray.tune.search.optuna import OptunaSearch

            inner = OptunaSearch(space=functools.partial(define_configuration, space=layer_space, hyperparameters={}),
                                 metric="score", mode="max", seed=seed)
        else:
            # bohb: TuneBOHB over a flat categorical space (which groups, a layer per group, a connector), with
            # HyperBandForBOHB as Ray's docs pair them (max_t the full 9000 steps, the same reduction factor); it
            # pauses trials at its milestones and resumes them from their checkpoints (replay_checkpoints)
            from ray import tune
            from ray.tune.schedulers import HyperBandForBOHB
            from ray.tune.search.bohb import TuneBOHB

            scheduler = HyperBandForBOHB(time_attr="global_step", metric="score", mode="max", max_t=CURVE_STEPS[-1],
                                         reduction_factor=config.budget.reduction_factor)

            shapes = ["+".join(names) for n in layer_space.num_layers
                      for names in itertools.combinations(layer_space.groups, n)] \
                if layer_space.one_per_group else [g for g in layer_space.groups]
            space = {"shape": tune.choice(shapes),
                     **{f"layer_{g}": tune.choice(members) for g, members in layer_space.groups.items()},
                     "fusion_connector": tune.choice(layer_space.fusion_connectors or ["none"])}
            inner = TuneBOHB(space=space, metric="score", mode="max", seed=seed)

            def flat(c: dict) -> dict:
                names = c["shape"].split("+")
                connector = layer_space.single_connectors[0] if len(names) == 1 else c["fusion_connector"]
                return keyed({"layers": [c[f"layer_{g}"] for g in names], "connector": connector})

            return _as_searcher(KeyedSearcher(inner, flat), Searcher), scheduler
        return _as_searcher(KeyedSearcher(inner, keyed), Searcher), scheduler

    return factory


def _as_searcher(keyed: KeyedSearcher, base):
    """KeyedSearcher as a subclass of Tune's Searcher (Tune checks the type), still delegating to the stock one."""

    class Keyed(base):
        def __init__(self):  # no Searcher.__init__: metric, mode and the rest are the stock searcher's
            pass

        def __getattr__(self, name):
            return getattr(keyed.inner, name)

        def set_search_properties(self, metric, mode, config, **spec):
            return keyed.inner.set_search_properties(metric, mode, config, **spec)

        def suggest(self, trial_id):
            return keyed.suggest(trial_id)

        def on_trial_result(self, trial_id, result):
            return keyed.inner.on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id, result=None, error=False):
            return keyed.inner.on_trial_complete(trial_id, result, error)

        def set_max_concurrency(self, max_concurrent):
            return keyed.inner.set_max_concurrency(max_concurrent)

        def save(self, checkpoint_path):
            return keyed.inner.save(checkpoint_path)

        def restore(self, checkpoint_path):
            return keyed.inner.restore(checkpoint_path)

        @property
        def metric(self):
            return keyed.inner.metric

        @property
        def mode(self):
            return keyed.inner.mode

    return Keyed()


# ================================================================================================ runs
def preimport() -> None:
    """Ray's worker_process_setup_hook: import Tune in the pooled worker processes before a trial claims one (each
    trial is a new actor; `import ray.tune` is ~1-2 s of CPU here). Only import time moves; nothing else changes."""
    import pyarrow.parquet  # noqa: F401
    import ray.tune  # noqa: F401

    import raylayers.search.tuner  # noqa: F401


def progress_to_target(rows: list[dict], threshold: float) -> tuple[bool, int, int]:
    """(reached, trials, steps): the trials in finish order up to and including the first completed one at or above
    `threshold`, and the steps they trained (a pruned trial counts the steps it ran)."""
    trials, steps = 0, 0
    for row in rows:
        trials += 1
        steps += int(row["steps_trained"] or 0)
        if row["status"] == "completed" and row["score"] is not None and row["score"] >= threshold:
            return True, trials, steps
    return False, trials, steps


def run_one(table: dict, strategy: str, seed: int, work: Path, stop_at_target: bool) -> dict:
    """One search of a strategy on a table (stopped at the target unless `stop_at_target` is False): its record."""
    from raylayers.search.results import read_results
    from raylayers.search.tuner import run_search

    out = work / f"{Path(table['table']).stem}_{strategy}_{seed}"
    overrides = STRATEGIES[strategy] + [f"budget.seed={seed}", f"budget.trials={table['trials']}",
                                        f"lrs.file={TABLES / 'lrs.json'}"]
    stopper = StopAtScore(table["threshold"]) if stop_at_target else None
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        summary = run_search(ROOT / table["space_file"], out, objective=f"table:{ROOT / table['table']}",
                             overrides=overrides, stopper=stopper,
                             search_factory=stock_search(strategy, seed) if strategy in STOCK else None,
                             replay_checkpoints=strategy == "bohb")
    seconds = time.perf_counter() - started
    rows = sorted(read_results(out / "results.parquet"), key=lambda r: r["order"])
    reached, trials, steps = progress_to_target(rows, table["threshold"])
    completed = [r for r in rows if r["status"] == "completed" and r["score"] is not None]
    record = {
        "strategy": strategy, "seed": seed, "overrides": overrides, "seconds": round(seconds, 2),
        "reached": reached, "trials_to_target": trials if reached else None,
        "steps_to_target": steps if reached else None, "stopped_at_target": bool(stopper and stopper.reached),
        "trials": len(rows), "distinct_keys": len({r["key"] for r in rows}),
        "completed": summary["completed"], "pruned": summary["pruned"], "failed": summary["failed"],
        "total_steps": sum(int(r["steps_trained"] or 0) for r in rows),
        "best_found": max((r["score"] for r in completed), default=None),
        "best_found_key": max(completed, key=lambda r: r["score"])["key"] if completed else None,
        # the searcher's counters, which the summary takes from its searcher.json (absent: None)
        "repeats_answered": summary.get("searcher", {}).get("repeats_answered"),
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


def summarise(runs: list[dict], tables: dict) -> dict:
    summary = {}
    for run in runs:
        summary.setdefault(run["table"], {}).setdefault(run["strategy"], []).append(run)
    out = {}
    for table, strategies in summary.items():
        out[table] = {}
        for strategy, group in strategies.items():
            trials = [r["trials_to_target"] if r["reached"] else math.inf for r in group]
            steps = [r["steps_to_target"] if r["reached"] else math.inf for r in group]
            # (a) a run that never reached counts as the steps its budget spent (it ran to its budget)
            steps_budget = [r["steps_to_target"] if r["reached"] else r["total_steps"] for r in group]
            # (c) the other reading of "counts as the full budget": every trial of its budget trained in full
            full_budget = tables[table]["trials"] * CURVE_STEPS[-1]
            steps_full = [r["steps_to_target"] if r["reached"] else full_budget for r in group]
            out[table][strategy] = {
                "runs": len(group), "reached": sum(r["reached"] for r in group),
                "trials_to_target": statistics(trials), "steps_to_target": statistics(steps),
                "steps_not_reached_as_budget": statistics(steps_budget),
                "steps_not_reached_as_full_budget": statistics(steps_full),
                # expected steps to the target, as benchmarking suites of optimisers count it (the "expected running
                # time"): every step every seed spent, reached or not, over the seeds that reached; none if none did.
                # A strategy that gives up cheaply cannot look cheap by it.
                "expected_steps": sum(steps_budget) / sum(r["reached"] for r in group)
                if any(r["reached"] for r in group) else None,
                "trials_run_mean": float(np.mean([r["trials"] for r in group])),
                "pruned_mean": float(np.mean([r["pruned"] for r in group])),
                "failed_total": sum(r["failed"] for r in group),
                "total_steps_mean": float(np.mean([r["total_steps"] for r in group])),
                "best_found_median": float(np.median([r["best_found"] for r in group if r["best_found"] is not None])),
                "seconds_mean": float(np.mean([r["seconds"] for r in group])),
            }
    return out


def comparison(summary: dict, tables: dict, ours: str = "geometry_asha") -> dict:
    """Per table: the median steps to 1% of each strategy (a run that never reached counts as the steps of its full
    budget), and how many times more the others spent than ours; the exhaustive sweep (every configuration of the
    space trained in full, the paper's way) as space size x the last curve step."""
    result = {}
    for table, strategies in summary.items():
        if ours not in strategies:
            continue
        mine = strategies[ours]["steps_not_reached_as_budget"]["p50"]
        mine_full = strategies[ours]["steps_not_reached_as_full_budget"]["p50"]
        row = {"ours_median_steps": mine, "ours_reached": f"{strategies[ours]['reached']}/{strategies[ours]['runs']}",
               "exhaustive_steps": tables[table]["space_size"] * CURVE_STEPS[-1]}
        row["exhaustive_over_ours"] = row["exhaustive_steps"] / mine
        expected = strategies[ours]["expected_steps"]
        row["ours_expected_steps"] = expected
        row["ours_median_steps_full_budget"] = mine_full
        for name, s in strategies.items():
            if name == ours:
                continue
            median = s["steps_not_reached_as_budget"]["p50"]
            row[f"{name}_median_steps"] = median
            row[f"{name}_over_ours"] = median / mine
            row[f"{name}_median_steps_full_budget"] = s["steps_not_reached_as_full_budget"]["p50"]
            row[f"{name}_full_budget_over_ours"] = s["steps_not_reached_as_full_budget"]["p50"] / mine_full
            row[f"{name}_expected_steps"] = s["expected_steps"]
            row[f"{name}_expected_over_ours"] = s["expected_steps"] / expected \
                if s["expected_steps"] is not None and expected else None
            row[f"{name}_reached"] = f"{s['reached']}/{s['runs']}"
        result[table] = row
    return result


def print_comparison(rows: dict, summary: dict, stream=sys.stdout) -> None:
    """A markdown table: per table and strategy, steps (k) to 1% (median [p25-p75]) with a seed that never reached
    counted (a) as the steps its budget spent and (c) as its full budget (every trial in full), the expected steps
    (b), the seeds that reached, and each ratio to ours."""
    print("\n| table | strategy | reached | trials to 1%: median [p25-p75] | (a) steps (k) to 1%, not reached = "
          "steps spent: median [p25-p75] | vs ours | (c) not reached = full budget: median | vs ours | "
          "(b) expected steps (k): all steps / seeds reached | vs ours |", file=stream)
    print("|---|---|---|---|---|---|---|---|---|---|", file=stream)

    def one(v, scale=1.0):
        return "NR" if v is None else f"{v / scale:g}"

    def ratio(table, key):
        return f"{rows[table][key]:.1f}x" if table in rows and rows[table].get(key) else "-"

    for table, strategies in summary.items():
        for name, s in strategies.items():
            trials, steps = s["trials_to_target"], s["steps_not_reached_as_budget"]
            full = s["steps_not_reached_as_full_budget"]["p50"]
            ours = name == "geometry_asha"
            expected = "never" if s.get("expected_steps") is None else f"{s['expected_steps'] / 1000:.0f}"
            print(f"| {table} | {name} | {s['reached']}/{s['runs']} | {one(trials['p50'])} [{one(trials['p25'])}-"
                  f"{one(trials['p75'])}] | {one(steps['p50'], 1000)} [{one(steps['p25'], 1000)}-"
                  f"{one(steps['p75'], 1000)}] | {'1' if ours else ratio(table, f'{name}_over_ours')} | "
                  f"{one(full, 1000)} | {'1' if ours else ratio(table, f'{name}_full_budget_over_ours')} | "
                  f"{expected} | {'1' if ours else ratio(table, f'{name}_expected_over_ours')} |", file=stream)
        if table in rows:
            r = rows[table]
            sweep = r["exhaustive_steps"]
            print(f"| {table} | exhaustive sweep (all {sweep // CURVE_STEPS[-1]} in full) | - | - | {sweep / 1000:g} | "
                  f"{r['exhaustive_over_ours']:.1f}x | {sweep / 1000:g} | "
                  f"{sweep / r['ours_median_steps_full_budget']:.1f}x | {sweep / 1000:g} | "
                  f"{sweep / r['ours_expected_steps']:.1f}x |", file=stream)


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


def plot(runs: list[dict], tables: dict, path: Path, steps: bool = False) -> None:
    """Per table, per strategy: every run's trials-to-1% (not reached: drawn in an "NR" band above the budget) and
    a box from the censored percentiles (a box edge or median in the band means that percentile was not reached)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(tables)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 4.4 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, table in zip(axes.flat, names):
        budget = tables[table]["trials"]
        if steps:  # in thousands of steps; the budget line: the most steps a run spent
            budget = max(r["total_steps"] for r in runs if r["table"] == table) / 1000
        nr_level = budget * 1.12
        strategies = [s for s in STRATEGIES if any(r["table"] == table and r["strategy"] == s for r in runs)]
        boxes, labels = [], []
        for i, strategy in enumerate(strategies, start=1):
            group = [r for r in runs if r["table"] == table and r["strategy"] == strategy]
            values = [(r["steps_to_target"] / 1000 if steps else r["trials_to_target"]) if r["reached"] else math.inf
                      for r in group]

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
        ax.set_title(f"{table}\n{tables[table]['space_size']} configurations, budget {tables[table]['trials']} "
                     f"trials, {len(tables[table]['within_1pct'])} within 1%", fontsize=9)
        ax.set_ylabel("training steps (k) until within 1% of the best" if steps
                      else "trials until within 1% of the best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ================================================================================================ main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per strategy (0..N-1; grid: at most 2)")
    parser.add_argument("--tables", default="paper_single_layer,paper_single_vision_centric,paper_single_hallucination,"
                                            "fusion_near_reps,fusion_adversarial,fusion_four_connectors")
    parser.add_argument("--strategies", default="geometry_asha,stock_tpe_asha,bohb,random,grid")
    parser.add_argument("--parallel", type=int, default=2,
                        help="searches at once (extra drivers on the same Ray cluster; each search is sequential)")
    parser.add_argument("--full-budget", action="store_true",
                        help="run every search to its budget (default: stop a search once it reached the target)")
    parser.add_argument("--no-save", action="store_true", help="print only; write no results")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw benchmarks/results/search_efficiency.png from the saved JSON")
    parser.add_argument("--helper", help=argparse.SUPPRESS)
    return parser.parse_args()


def plan_runs(tables: list[str], strategies: list[str], seeds: int) -> list[tuple]:
    """(table, strategy, seed, number, total) of every search, in the order the summary lists them."""
    plan = [(table, strategy, seed) for table in tables for strategy in strategies
            for seed in range(min(seeds, GRID_SEEDS) if strategy == "grid" else seeds)]
    return [(*job, number, len(plan)) for number, job in enumerate(plan, start=1)]


def run_plan(plan: list[tuple], tables: dict, parallel: int, stop_at_target: bool) -> list[dict]:
    """Every search of the plan, `parallel` at once (this driver and parallel - 1 helper drivers on the same Ray
    cluster, each taking every parallel-th search); the runs' records in plan order."""
    import ray

    work = Path(tempfile.mkdtemp(prefix="search_efficiency_"))
    sinks = [work / f"runs_{k}.jsonl" for k in range(parallel)]
    helpers = []
    try:
        for k in range(1, parallel):
            shard = {"address": ray.get_runtime_context().gcs_address, "jobs": plan[k::parallel],
                     "tables": tables, "work": str(work), "stop_at_target": stop_at_target,
                     "sink": str(sinks[k]), "tag": f"(driver {k}) "}
            (work / f"shard_{k}.json").write_text(json.dumps(shard))
            helpers.append(subprocess.Popen([sys.executable, __file__, "--helper", str(work / f"shard_{k}.json")]))
        run_shard(plan[0::parallel], tables, work, stop_at_target, sinks[0], "(driver 0) " if parallel > 1 else "")
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
    return sorted(runs, key=lambda r: order[(r["table"], r["strategy"], r["seed"])])


def save_results(args: argparse.Namespace, tables: dict, runs: list[dict], summary: dict, wall: float,
                 git_at_start: dict) -> None:
    """benchmarks/results/search_efficiency.json (everything, every run) and the box plot of the chosen tables."""
    import optuna
    import ray

    RESULTS.mkdir(parents=True, exist_ok=True)
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
    payload["comparison"] = comparison(summary, tables)
    (RESULTS / "search_efficiency.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    plot(runs, {t: tables[t] for t in args.tables.split(",")}, RESULTS / "search_efficiency.png")
    plot(runs, {t: tables[t] for t in args.tables.split(",")}, RESULTS / "search_efficiency_steps.png", steps=True)
    print(f"wrote {RESULTS / 'search_efficiency.json'} and {RESULTS / 'search_efficiency.png'}")


def main() -> None:
    args = parse_args()
    if args.helper:
        helper_main(args.helper)
        return
    if args.plot_only:  # from the saved runs: the figures, the summary and the comparison (computed again)
        saved = json.loads((RESULTS / "search_efficiency.json").read_text())
        saved["summary"] = summarise(saved["runs"], saved["tables"])
        saved["comparison"] = comparison(saved["summary"], saved["tables"])
        print_comparison(saved["comparison"], saved["summary"])
        (RESULTS / "search_efficiency.json").write_text(json.dumps(saved, indent=1, default=str) + "\n")
        plot(saved["runs"], saved["tables"], RESULTS / "search_efficiency.png")
        plot(saved["runs"], saved["tables"], RESULTS / "search_efficiency_steps.png", steps=True)
        return

    import ray

    started = time.perf_counter()
    git_at_start = git_state()
    tables = build_tables(TABLES, ROOT, TOLERANCE)
    strategies = args.strategies.split(",")
    if "bohb" in strategies and not bohb_available():
        print("skipping bohb: hpbandster and ConfigSpace are not installed (pip install hpbandster ConfigSpace)",
              flush=True)
        strategies.remove("bohb")
        args.strategies = ",".join(strategies)
    for name, t in tables.items():
        print(f"table {name}: {t['space_size']} configurations in the space, best {t['best_key']} "
              f"{t['best_score']:.4f}, {len(t['within_1pct'])} within 1% (>= {t['threshold']:.4f}), "
              f"budget {t['trials']} trials", flush=True)
    ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", logging_level="ERROR",
             log_to_driver=False, runtime_env={"worker_process_setup_hook": preimport})
    quiet_ray_loggers()
    plan = plan_runs(args.tables.split(","), args.strategies.split(","), args.seeds)
    # what a driver needs of a table (the finals and the within-1% list are large and only for the results file)
    light = {name: {k: v for k, v in t.items() if k not in ("finals", "within_1pct")} for name, t in tables.items()}
    runs = run_plan(plan, light, args.parallel, stop_at_target=not args.full_budget)
    summary = summarise(runs, tables)
    print_summary(summary)
    print_comparison(comparison(summary, tables), summary)
    wall = time.perf_counter() - started
    print(f"\nwall time {wall:.0f}s for {len(runs)} searches ({args.parallel} at once)", flush=True)
    if not args.no_save:
        save_results(args, tables, runs, summary, wall, git_at_start)


if __name__ == "__main__":
    main()
