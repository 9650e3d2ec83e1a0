"""The end of a search: the best configuration, the baseline it is compared with, and the summary.

`finish` reads the results table, writes `best_config.yaml` (a full `raylayers train` config), the report and
`search_summary.json`; `failure_line` is the one line a search without a completed trial ends with.
"""

from __future__ import annotations

import json
from pathlib import Path

from raylayers.config import SearchConfig
from raylayers.errors import UserError
from raylayers.search.searcher import COUNTERS_FILE
from raylayers.search.space import LayerSpace
from raylayers.search.trial import base_train_config, trial_train_config

RESULTS_FILE = "results.parquet"
BEST_CONFIG_FILE = "best_config.yaml"
SUMMARY_FILE = "search_summary.json"


def finish(config: SearchConfig, out: Path, lrs: dict, lrs_path: Path, layer_space: LayerSpace,
           seconds: float, costs=None) -> dict:
    """best_config.yaml, report.md with its plots, and the summary (with `objective.cost`, its `cost` block from
    `costs`, the search's `raylayers.search.cost.SearchCosts`)."""
    from raylayers.files import write_text_atomic
    from raylayers.search.cost import cost_summary
    from raylayers.search.report import write_report
    from raylayers.search.results import read_results

    rows = read_results(out / RESULTS_FILE)
    done = [r for r in rows if r["status"] == "completed" and r["score"] is not None]
    best = max(done, key=lambda r: r["score"]) if done else None
    baseline = next((r for r in done if layer_space.is_baseline(r["layers"], r["connector"])), None)
    summary = {"name": config.name, "trials": len(rows), "completed": len(done),
               "pruned": sum(r["status"] == "pruned" for r in rows),
               "failed": sum(r["status"] == "failed" for r in rows),
               "paused": sum(r["status"] == "paused" for r in rows),
               "seconds": round(seconds, 1), "lrs": str(lrs_path), "objective_metric": config.objective.metric,
               "best": best, "baseline": baseline}
    failed = sorted((r for r in rows if r["status"] == "failed"), key=lambda r: r["order"])
    if failed:
        summary["first_error"] = {"trial_id": failed[0]["trial_id"], "error": failed[0]["error"]}
    if best is not None:
        _write_best_config(config, best, out / BEST_CONFIG_FILE)
        summary["best_config"] = str(out / BEST_CONFIG_FILE)
    reliance = [r["image_reliance"] for r in done if r.get("image_reliance") is not None]
    if reliance:
        summary["image_reliance_min"] = min(reliance)
        summary["image_reliance_max"] = max(reliance)
    versus = _best_vs_baseline(out, best, baseline, config.objective) if best and baseline else None
    if versus is not None:
        summary["best_vs_baseline"] = versus
    per_category = recommend_per_category(out, done, best, baseline, config.objective)
    if per_category:
        summary["per_category"] = per_category
    cost = cost_summary(rows, costs) if costs is not None else None
    if cost is not None:  # the score-against-cost front of the completed trials
        summary["cost"] = cost
    if (out / COUNTERS_FILE).is_file():  # what the searcher did besides launching trials (repeats answered, ...)
        summary["searcher"] = json.loads((out / COUNTERS_FILE).read_text())
    summary["report"] = str(write_report(out, rows, lrs, layer_space, summary))
    write_text_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _best_vs_baseline(out: Path, best: dict, baseline: dict, objective) -> dict | None:
    """Paired bootstrap of the best trial against the baseline on the questions both answered (train objective),
    with the objective's category weights and per-question rule (official or lenient)."""
    from raylayers.evaluate.significance import paired_bootstrap

    files = [out / "trials" / row["trial_id"] / "eval" / "per_question.parquet" for row in (best, baseline)]
    if best["trial_id"] == baseline["trial_id"] or not all(f.is_file() for f in files):
        return None  # the baseline won, or a table objective: no per-question answers to resample
    column = "correct" if objective.metric == "official" else "correct_lenient"
    return paired_bootstrap(*files, weights=objective.weights or None, column=column)


def recommend_per_category(out: Path, done: list[dict], best: dict | None, baseline: dict | None,
                           objective) -> dict:
    """From the trials one search completed: the best configuration for the weighted objective and for each category
    the results table scores (`score_<category>`), each with the paired-bootstrap verdict against the penultimate-
    layer baseline on that category's questions (None without per-question answers, e.g. a table objective, or when
    the baseline is itself the best)."""
    from raylayers.evaluate.schema import CATEGORIES
    from raylayers.evaluate.significance import describe, paired_bootstrap_sets

    column = "correct" if objective.metric == "official" else "correct_lenient"

    def entry(row: dict, key: str, category: str | None) -> dict:
        result = {"trial_id": row["trial_id"], "layers": list(row["layers"]), "connector": row["connector"],
                  "hyperparameters": json.loads(row.get("hyperparameters") or "{}"), "score": row.get(key),
                  "baseline_score": baseline.get(key) if baseline else None, "versus_baseline": None,
                  "verdict": None}
        if baseline is None:
            result["verdict"] = "no baseline trial completed"
            return result
        if row["trial_id"] == baseline["trial_id"]:
            result["verdict"] = "the baseline itself is the best"
            return result
        files = [out / "trials" / r["trial_id"] / "eval" / "per_question.parquet" for r in (row, baseline)]
        if not all(f.is_file() for f in files):
            result["verdict"] = "no per-question answers to compare (a table objective)"
            return result
        try:
            versus = paired_bootstrap_sets([files[0]], [files[1]], category=category, column=column,
                                           weights=objective.weights or None)
        except UserError:  # no question of that category
            result["verdict"] = "no question of this category"
            return result
        result["versus_baseline"] = versus
        result["verdict"] = describe(versus)
        return result

    recommendations = {}
    if best is not None:
        recommendations["weighted"] = entry(best, "score", None)
    for category in CATEGORIES:
        key = f"score_{category}"
        scored = [r for r in done if r.get(key) is not None]
        if scored:
            recommendations[category] = entry(max(scored, key=lambda r: r[key]), key, category)
    return recommendations


def _write_best_config(config: SearchConfig, best: dict, path: Path) -> None:
    import yaml

    from raylayers.config import dump_yaml

    trial = {"layers": list(best["layers"]), "connector": best["connector"],
             "hyperparameters": json.loads(best.get("hyperparameters") or "{}")}
    try:
        train = trial_train_config(base_train_config(config), trial, name="best")  # resolved here, in the driver
    except UserError:  # a table objective over a base recipe that is not available here
        path.write_text(yaml.safe_dump({"model": {"layers": trial["layers"], "connector": trial["connector"]}}))
        return
    header = (f"# Best configuration of search '{config.name}' (score {best['score']:.4f}).\n"
              f"#   raylayers train --config {path} --out runs/best\n")
    path.write_text(header + dump_yaml(train))


def failure_line(summary: dict) -> str:
    """How many trials completed, and the first failure's error (the one line a failed search ends with)."""
    line = f"{summary['completed']} of {summary['trials']} trials completed"
    if summary.get("pruned"):
        line += f", {summary['pruned']} stopped early"
    if summary.get("first_error"):
        line += f"; {first_error(summary)}"
    return line


def first_error(summary: dict) -> str:
    """The first failed trial and its error, as the summary lines say it."""
    first = summary["first_error"]
    return f"first error (trial {first['trial_id']}): {first['error']}"
