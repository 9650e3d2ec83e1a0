"""`raylayers eval`: answer (or read) predictions, score them per benchmark, category and overall, write outputs.

Outputs in `--out`:
- `scores.json`: per benchmark its metric's figures (`score`, the official rule's headline, and `score_lenient`,
  the same figure read leniently) plus `errors` (rows whose image failed), `missing`, `unknown_ids` and `duplicates`
  (predictions files); per category the mean of its benchmarks; `overall`, the mean of the categories present;
  `objective_metric` (official by default, or lenient: which of the two those means use) and `by_metric` (the
  means under both); `row`, the flat scores a search's results table takes;
- `per_question.parquet`: benchmark, question_id, task, category, prediction, parsed, correct, correct_lenient,
  error;
- `predictions.jsonl` (model runs): what the model answered, in the predictions format, re-scorable later.

With `workers > 1` the questions are split into contiguous shards, each answered by a Ray task holding its own
copy of the model (one GPU each on a GPU cluster), and merged back in question order.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

from raylayers.errors import UserError
from raylayers.evaluate.bench import Benchmark, load_benchmark, resolve_benchmarks
from raylayers.evaluate.schema import CATEGORIES


# ================================================================================================ scoring
def score_benchmark(bench: Benchmark, predictions: dict[str, str], errors: dict[str, str] | None = None) -> dict:
    """Score one benchmark from {question_id: prediction}; a missing prediction counts as wrong."""
    from raylayers.evaluate.metrics import METRICS

    errors = errors or {}
    rows, missing = [], 0
    for row in bench.rows:
        qid = row["question_id"]
        if qid not in predictions:
            missing += 1
        rows.append({**row, "image": _image_key(row), "prediction": predictions.get(qid, "")})
    result = METRICS[bench.metric](rows)
    per_question = result.pop("per_question")
    error_counts = Counter(errors.values())
    # multiple-choice rows without options are scored against every letter A..Z: counted, so eval can say so
    no_options = [row["question_id"] for row in bench.rows
                  if bench.answer_type == "multiple_choice" and not row["options"]]
    result.update({"metric": bench.metric, "category": bench.category, "missing": missing,
                   "errors": dict(error_counts), "num_errors": sum(error_counts.values()),
                   "num_no_options": len(no_options), "no_options": no_options[:20]})
    table_rows = []
    for row, scored in zip(rows, per_question):
        correct = scored["correct"]
        table_rows.append({"benchmark": bench.name, "question_id": row["question_id"], "task": str(row.get("task")),
                           "category": bench.category, "prediction": row["prediction"],
                           "parsed": None if scored["parsed"] is None else str(scored["parsed"]),
                           "correct": float(correct), "correct_lenient": float(scored["correct_lenient"]),
                           "answer": str(row["answer"]),
                           "error": errors.get(row["question_id"])})
    return {"scores": result, "rows": table_rows}


def _image_key(row: dict) -> str | None:
    """Which image a question is about (MME's acc+ groups the questions of an image): `image_id` when the
    benchmark has it, else the image path, else a hash of the image bytes."""
    import hashlib

    from raylayers.image_source import image_cell

    if row.get("image_id") is not None:
        return str(row["image_id"])
    image = image_cell(row.get("image"))
    if isinstance(image, bytes):
        return hashlib.sha1(image).hexdigest()
    return image


def check_metric(metric: str) -> None:
    """A UserError unless `metric` is an objective metric (official or lenient)."""
    from raylayers.evaluate.metrics import SCORE_KEYS

    if metric not in SCORE_KEYS:
        raise UserError(f"unknown objective metric '{metric}' (valid: {', '.join(SCORE_KEYS)})")


def _means(per_benchmark: dict[str, dict], key: str, weights: dict[str, float]) -> tuple[dict[str, float], float]:
    """Category means of the benchmarks' `key` figure and their weighted mean (a benchmark without `key`, such as
    one scored before the lenient figure existed, gives its `score`)."""
    categories: dict[str, list[float]] = {}
    for scores in per_benchmark.values():
        categories.setdefault(scores["category"], []).append(scores.get(key, scores["score"]))
    means = {c: sum(v) / len(v) for c, v in categories.items()}
    total = sum(weights.get(c, 1.0) for c in means)
    return means, sum(weights.get(c, 1.0) * m for c, m in means.items()) / total if total else 0.0


def summarise(per_benchmark: dict[str, dict], weights: dict[str, float] | None = None,
              metric: str = "official") -> dict:
    """Category means and the overall score (a weighted mean over the categories present, equal by default), of
    each benchmark's official `score` or, with metric="lenient", of its `score_lenient`; `by_metric` holds both."""
    from raylayers.evaluate.metrics import SCORE_KEYS

    check_metric(metric)
    by_metric = {}
    for name, key in SCORE_KEYS.items():
        means, overall = _means(per_benchmark, key, weights or {})
        by_metric[name] = {"categories": means, "overall": overall}
    means, overall = by_metric[metric]["categories"], by_metric[metric]["overall"]
    row = {"score": overall, **{f"score_{c}": means[c] for c in CATEGORIES if c in means},
           **{f"bench_{name}": s.get(SCORE_KEYS[metric], s["score"]) for name, s in per_benchmark.items()}}
    return {"categories": means, "overall": overall, "objective_metric": metric, "by_metric": by_metric, "row": row}


def _write_outputs(out: Path, per_benchmark: dict, table_rows: list[dict], extra: dict) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(per_benchmark, extra.pop("weights", None), extra.pop("metric", "official"))
    scores = {"benchmarks": per_benchmark, **summary, **extra}
    pq.write_table(pa.Table.from_pylist(table_rows), out / "per_question.parquet")
    (out / "scores.json").write_text(json.dumps(scores, indent=2, default=str) + "\n")
    return scores


# ================================================================================================ predictions file
def score_predictions_file(predictions_file: str | Path, bench_spec: str, out: str | Path,
                           limit: int | None = None, metric: str = "official") -> dict:
    """Score a predictions JSONL made elsewhere; unknown ids and duplicates are reported, missing ids are wrong.
    `metric` (official or lenient) is the figure the category means and the overall score use."""
    from raylayers.evaluate.predict import read_predictions

    check_metric(metric)
    out = Path(out)
    started = time.perf_counter()
    benches = [load_benchmark(folder, limit) for folder in resolve_benchmarks(bench_spec, out)]
    records = read_predictions(predictions_file)
    known = {row["question_id"]: bench.name for bench in benches for row in bench.rows}
    by_bench: dict[str, dict[str, str]] = {bench.name: {} for bench in benches}
    counts = Counter(r["question_id"] for r in records)
    unknown = sorted({r["question_id"] for r in records if r["question_id"] not in known})
    for record in records:
        name = record.get("benchmark") or known.get(record["question_id"])
        if name in by_bench and record["question_id"] not in by_bench[name]:  # the first answer counts
            by_bench[name][record["question_id"]] = record["prediction"]
    per_benchmark, table_rows = {}, []
    for bench in benches:
        scored = score_benchmark(bench, by_bench[bench.name])
        scored["scores"]["duplicates"] = sorted(q for q in by_bench[bench.name] if counts[q] > 1)
        per_benchmark[bench.name] = scored["scores"]
        table_rows.extend(scored["rows"])
    extra = {"predictions": str(predictions_file), "unknown_ids": unknown[:100], "num_unknown_ids": len(unknown),
             "num_duplicates": sum(1 for c in counts.values() if c > 1),
             "num_missing": sum(s["missing"] for s in per_benchmark.values()), "metric": metric,
             "seconds": round(time.perf_counter() - started, 2)}
    return _write_outputs(out, per_benchmark, table_rows, extra)


# ================================================================================================ model runs
def _predict_shard(checkpoint: str, bench_folder: str, start: int, stop: int, mode: str, batch_size: int,
                   device: str, limit: int | None) -> list[dict]:
    """Answer rows [start, stop) of a benchmark (runs in a Ray task, or in this process)."""
    from raylayers.evaluate.predict import Predictor

    bench = load_benchmark(bench_folder, limit)
    predictor = Predictor(checkpoint, device=device, batch_size=batch_size)
    rows = bench.rows[start:stop]
    return predictor.predict(rows, [bench.image_source(r) for r in rows], bench.answer_type, mode)


def _shards(size: int, parts: int) -> list[tuple[int, int]]:
    step = math.ceil(size / parts)
    return [(i, min(i + step, size)) for i in range(0, size, step)]


def evaluate_checkpoint(checkpoint: str | Path, bench_spec: str, out: str | Path, mode: str = "greedy",
                        workers: int = 1, batch_size: int = 16, limit: int | None = None,
                        use_gpu: bool = False, weights: dict[str, float] | None = None,
                        metric: str = "official", loaded=None) -> dict:
    """Answer every question of the benchmarks with the checkpoint (here, or sharded over Ray workers) and score
    them; writes `predictions.jsonl`, `per_question.parquet` and `scores.json` into `out`. `weights` and `metric`
    (official or lenient) make the category means and the overall score. `loaded`: the checkpoint's (model,
    tokenizer) still in memory (one worker), not loaded again."""
    from raylayers.config import MODES
    from raylayers.evaluate.predict import find_checkpoint

    if mode not in MODES:
        raise UserError(f"unknown evaluation mode '{mode}' (valid: {', '.join(MODES)})")
    check_metric(metric)
    out = Path(out)
    started = time.perf_counter()
    folder = str(find_checkpoint(checkpoint).resolve())
    bench_folders = [f.resolve() for f in resolve_benchmarks(bench_spec, out)]
    benches = [load_benchmark(f, limit) for f in bench_folders]
    total = sum(len(b.rows) for b in benches)
    print(f"[raylayers] evaluating {folder} on {len(benches)} benchmark(s), {total} questions, {mode} mode, "
          f"{workers} worker(s)", flush=True)
    device = "cuda" if use_gpu else "cpu"
    if workers <= 1:
        answers = _answer_here(folder, benches, mode, batch_size, device, loaded)
    else:
        answers = _answer_on_ray(folder, benches, bench_folders, mode, batch_size, device, limit, workers)
    per_benchmark, table_rows = {}, []
    out.mkdir(parents=True, exist_ok=True)
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for bench in benches:
            results = answers[bench.name]
            predictions = {r["question_id"]: r["prediction"] for r in results}
            errors = {r["question_id"]: r["error"] for r in results if r["error"]}
            scored = score_benchmark(bench, predictions, errors)
            per_benchmark[bench.name] = scored["scores"]
            table_rows.extend(scored["rows"])
            for r in results:
                handle.write(json.dumps({"question_id": r["question_id"], "prediction": r["prediction"],
                                         "benchmark": bench.name}) + "\n")
    num_errors = sum(s["num_errors"] for s in per_benchmark.values())
    if num_errors:
        print(f"[raylayers] warning: {num_errors} question(s) had an unreadable image and count as wrong "
              f"(see scores.json 'errors')", file=sys.stderr, flush=True)
    extra = {"checkpoint": folder, "mode": mode, "workers": workers, "weights": weights, "metric": metric,
             "seconds": round(time.perf_counter() - started, 2)}
    return _write_outputs(out, per_benchmark, table_rows, extra)


def _answer_here(folder: str, benches: list[Benchmark], mode: str, batch_size: int, device: str, loaded=None
                 ) -> dict[str, list[dict]]:
    """Every benchmark's answers from one predictor in this process, with a progress line."""
    from raylayers import timings
    from raylayers.evaluate.predict import Predictor

    with timings.span("evaluation load"):
        predictor = Predictor(folder, device=device, batch_size=batch_size, loaded=loaded)
    total, done, answers = sum(len(b.rows) for b in benches), 0, {}
    with timings.span("evaluation forwards"):
        for bench in benches:
            def progress(n, name=bench.name):
                nonlocal done
                done += n
                print(f"\r[raylayers] eval {name}: {done}/{total} questions", end="", file=sys.stderr, flush=True)

            answers[bench.name] = predictor.predict(bench.rows, [bench.image_source(r) for r in bench.rows],
                                                    bench.answer_type, mode, progress)
    print(file=sys.stderr)
    return answers


def _answer_on_ray(folder: str, benches: list[Benchmark], bench_folders: list[Path], mode: str, batch_size: int,
                   device: str, limit: int | None, workers: int) -> dict[str, list[dict]]:
    """Contiguous shards of every benchmark answered by Ray tasks, merged back in question order."""
    import ray

    from raylayers.ray_session import init_ray

    init_ray()
    on_gpu = device == "cuda"
    task = ray.remote(num_cpus=0 if on_gpu else 1, num_gpus=1 if on_gpu else 0)(_predict_shard)
    pending = {}
    for bench, bench_folder in zip(benches, bench_folders):
        for start, stop in _shards(len(bench.rows), workers):
            ref = task.remote(folder, str(bench_folder), start, stop, mode, batch_size, device, limit)
            pending[ref] = (bench.name, start)
    shards: dict[str, dict[int, list[dict]]] = {b.name: {} for b in benches}
    total, done, remaining = sum(len(b.rows) for b in benches), 0, list(pending)
    while remaining:
        ready, remaining = ray.wait(remaining, num_returns=1)
        name, start = pending[ready[0]]
        shards[name][start] = ray.get(ready[0])
        done += len(shards[name][start])
        print(f"\r[raylayers] eval: {done}/{total} questions", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {name: [r for start in sorted(parts) for r in parts[start]] for name, parts in shards.items()}


def format_scores(scores: dict) -> str:
    """A small table for the terminal."""
    lines = [f"{'benchmark':<16}{'category':<16}{'metric':<14}{'score':>8}{'lenient':>9}{'n':>7}"]
    for name, s in scores["benchmarks"].items():
        lenient = s.get("score_lenient", s["score"])
        lines.append(f"{name:<16}{s['category']:<16}{s['metric']:<14}{s['score']:>8.3f}{lenient:>9.3f}"
                     f"{s.get('n', 0):>7}")
    for category, value in scores["categories"].items():
        lines.append(f"{'[' + category + ']':<46}{value:>8.3f}")
    lines.append(f"{'overall (' + scores.get('objective_metric', 'official') + ')':<46}{scores['overall']:>8.3f}")
    return "\n".join(lines)
