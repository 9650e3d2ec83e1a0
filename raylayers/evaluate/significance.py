"""Is one evaluated model really better than another? A paired bootstrap over the questions both answered.

Written by hand: scipy's `bootstrap` has no strata, while our score is a weighted mean of category means of
benchmark means, so the resampling has to stay within each benchmark (each keeps its size) and pair the two models
question by question. Each benchmark's score is taken as the mean of its per-question `correct`
(exact for accuracy-type metrics, which is every offline-world benchmark; an approximation for F1 or MME's acc+).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from raylayers.errors import UserError


def _per_question(path: Path, column: str = "correct") -> dict[tuple[str, str], tuple[str, float]]:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise UserError(f"'{path}' does not exist (an evaluation's per_question.parquet)")
    names = pq.read_schema(path).names
    column = column if column in names else "correct"  # files written before `correct_lenient` existed
    table = pq.read_table(path, columns=["benchmark", "question_id", "category", column]).to_pylist()
    return {(r["benchmark"], r["question_id"]): (r["category"], float(r[column] or 0.0)) for r in table}


def paired_bootstrap(a_file: str | Path, b_file: str | Path, weights: dict[str, float] | None = None,
                     resamples: int = 2000, seed: int = 0, column: str = "correct") -> dict:
    """Score of A minus score of B with a 95% interval, resampling questions within each benchmark; `column` is
    the per-question figure (`correct`, the official rule, or `correct_lenient`).

    Returns {difference, low, high, p_better (the share of resamples where A beats B), questions, benchmarks}.
    """
    return paired_bootstrap_sets([a_file], [b_file], weights=weights, resamples=resamples, seed=seed,
                                 column=column)


def paired_bootstrap_sets(a_files: list, b_files: list, weights: dict[str, float] | None = None,
                          category: str | None = None, resamples: int = 2000, seed: int = 0,
                          column: str = "correct") -> dict:
    """`paired_bootstrap` between two sets of models: each question's correctness is the mean over a set's
    models (e.g. every deep layer vs every shallower one), on the questions every model answered; `category`
    keeps that category's benchmarks only."""
    sides = [[_per_question(Path(f), column) for f in files] for files in (a_files, b_files)]
    shared = sorted(set.intersection(*(set(m) for side in sides for m in side)))
    any_model = sides[0][0]
    if category is not None:
        shared = [key for key in shared if any_model[key][0] == category]
    if not shared:
        where = f" in category '{category}'" if category else ""
        raise UserError(f"'{a_files[0]}' and '{b_files[0]}' share no question{where}")
    by_bench: dict[str, list[tuple[str, float, float]]] = {}
    for key in shared:
        a, b = (float(np.mean([model[key][1] for model in side])) for side in sides)
        by_bench.setdefault(key[0], []).append((any_model[key][0], a, b))
    rng = np.random.default_rng(seed)
    weights = weights or {}
    category_draws: dict[str, list[np.ndarray]] = {}
    category_points: dict[str, list[float]] = {}
    for rows in by_bench.values():
        diff = np.array([ra - rb for _, ra, rb in rows])
        picks = rng.integers(0, len(rows), size=(resamples, len(rows)))
        category_draws.setdefault(rows[0][0], []).append(diff[picks].mean(axis=1))
        category_points.setdefault(rows[0][0], []).append(float(diff.mean()))
    total = sum(weights.get(c, 1.0) for c in category_draws)
    draws = sum(weights.get(c, 1.0) * np.mean(v, axis=0) for c, v in category_draws.items()) / total
    point = sum(weights.get(c, 1.0) * float(np.mean(v)) for c, v in category_points.items()) / total
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"difference": point, "low": float(low), "high": float(high), "p_better": float(np.mean(draws > 0)),
            "questions": len(shared), "benchmarks": len(by_bench), "resamples": resamples}


def category_interval(file: str | Path, category: str, resamples: int = 2000, seed: int = 0,
                      column: str = "correct") -> dict:
    """One model's category score (the mean of its benchmarks' means) with a 95% bootstrap interval."""
    model = _per_question(Path(file), column)
    by_bench: dict[str, list[float]] = {}
    for (bench, _), (cat, correct) in model.items():
        if cat == category:
            by_bench.setdefault(bench, []).append(correct)
    if not by_bench:
        return {"score": None, "low": None, "high": None, "questions": 0}
    rng = np.random.default_rng(seed)
    draws = np.mean([np.array(v)[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
                     for v in by_bench.values()], axis=0)
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"score": float(np.mean([np.mean(v) for v in by_bench.values()])), "low": float(low),
            "high": float(high), "questions": sum(len(v) for v in by_bench.values())}


def describe(result: dict) -> str:
    """One line: the difference, its interval, and whether the interval excludes zero."""
    verdict = ("a real difference" if result["low"] > 0 or result["high"] < 0
               else "within noise: these questions do not separate the two")
    return (f"{result['difference']:+.4f} (95% interval {result['low']:+.4f} to {result['high']:+.4f}, paired "
            f"bootstrap over {result['questions']} questions): {verdict}")
