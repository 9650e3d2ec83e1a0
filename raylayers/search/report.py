"""`report.md` of a search, with its plots: per-layer and per-category scores, the search's progress, and the LRS
heatmap with the chosen layers marked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from raylayers.evaluate.schema import CATEGORIES
from raylayers.plots import (
    plot_category_lines,
    plot_cost_front,
    plot_layer_benchmark_heatmap,
    plot_lrs_heatmap,
    plot_search_progress,
)

IMAGE_RELIANCE_FLOOR = 0.05  # nats per answer (the probe's unit); below it the models ignore their images


def caution(summary: dict) -> str | None:
    """A warning when no trained model uses its images (the probe's image reliance), else None."""
    reliance = summary.get("image_reliance_max")
    if reliance is None or reliance >= IMAGE_RELIANCE_FLOOR:
        return None
    return (f"no trained model leans on its images yet (validation loss rises by at most {reliance:.3f} nats per "
            "answer when the images are shuffled), so the scores reflect the answer prior, not the layers: "
            "train longer before drawing conclusions")


CATEGORY_KEYS = tuple(f"score_{category}" for category in CATEGORIES)


def _label(row: dict) -> str:
    return f"{'+'.join(map(str, row['layers']))} {row['connector']}"


def write_report(out: Path, rows: list[dict], lrs: dict, layer_space, summary: dict) -> Path:
    """`report.md` of a search and its figures: the outcome, the plots, the ranked table, the trials that did not
    complete."""
    out = Path(out)
    done = sorted((r for r in rows if r["status"] == "completed" and r["score"] is not None),
                  key=lambda r: -r["score"])
    lines = [f"# Search report: {summary['name']}", "",
             f"{summary['trials']} trials in {summary['seconds']:.0f} s: {summary['completed']} completed, "
             f"{summary['pruned']} stopped early by ASHA, {summary['failed']} failed. LRS: `{summary['lrs']}`.", ""]
    lines += _outcome(out, summary)
    lines += _per_category(summary)
    lines += _figures(out, rows, done, lrs, summary)
    lines += _cost_front(out, done, summary)
    lines += _ranked_table(done)
    others = [r for r in rows if r["status"] != "completed"]
    if others:
        lines += ["", "Stopped early or failed:", ""]
        for r in sorted(others, key=lambda r: r["order"]):
            what = f"stopped at step {r['steps_trained']} (probe {r['probe_score']:.3f})" if r["status"] == "pruned" \
                and r["probe_score"] is not None else r["status"]
            lines.append(f"- layers {list(r['layers'])} `{r['connector']}`: {what}"
                         + (f": {r['error']}" if r.get("error") else ""))
    lines += ["", f"Results table: `{out / 'results.parquet'}`; TensorBoard: `tensorboard --logdir {out}`.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _outcome(out: Path, summary: dict) -> list[str]:
    """The best configuration next to the baseline, whether the difference is beyond noise, the caution."""
    best, baseline = summary.get("best"), summary.get("baseline")
    if not best:
        return []
    lines = [f"**Best:** layers {list(best['layers'])} with `{best['connector']}`, score {best['score']:.4f}."]
    if baseline:
        delta = best["score"] - baseline["score"]
        lines.append(f"**Penultimate-layer baseline** (layer {list(baseline['layers'])}): {baseline['score']:.4f} "
                     f"({'+' if delta >= 0 else ''}{delta:.4f} for the best).")
    if summary.get("best_vs_baseline"):
        from raylayers.evaluate.significance import describe

        lines.append(f"Best minus baseline: {describe(summary['best_vs_baseline'])}.")
    warning = caution(summary)
    if warning:
        lines.append(f"**Caution:** {warning}.")
    lines += [f"Train it again: `raylayers train --config {out / 'best_config.yaml'} --out runs/best`.", ""]
    return lines


def _per_category(summary: dict) -> list[str]:
    """The best configuration per category and for the weighted objective, each against the baseline."""
    recommendations = summary.get("per_category") or {}
    if len(recommendations) < 2:  # only the weighted objective: the outcome above says it all
        return []
    lines = ["## Per-category recommendation (from this search's trials)", "",
             "| for | layers | connector | score | baseline | best minus baseline |", "|---|---|---|---|---|---|"]
    for name, r in recommendations.items():
        base = "-" if r["baseline_score"] is None else f"{r['baseline_score']:.4f}"
        lines.append(f"| {name} | {','.join(map(str, r['layers']))} | {r['connector']} | {r['score']:.4f} | {base} "
                     f"| {r['verdict']} |")
    return lines + [""]


def _figures(out: Path, rows: list[dict], done: list[dict], lrs: dict, summary: dict) -> list[str]:
    """The progress and LRS figures always; per category over single layers and per benchmark when there is data."""
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    best, baseline = summary.get("best"), summary.get("baseline")
    plot_lrs_heatmap(np.array(lrs["matrix"]), lrs["groups"], figures / "lrs_chosen.png",
                     title="LRS, best layers in red", marked_layers=list(best["layers"]) if best else None)
    plot_search_progress([r["score"] if r["status"] == "completed" else None
                          for r in sorted(rows, key=lambda r: r["order"])], figures / "progress.png",
                         baseline=baseline["score"] if baseline else None)
    lines = ["![search progress](figures/progress.png)", "", "![LRS with the chosen layers](figures/lrs_chosen.png)",
             ""]
    single = {r["layers"][0]: r for r in done if len(r["layers"]) == 1}
    per_layer = {layer: {k[6:]: r[k] for k in CATEGORY_KEYS if r.get(k) is not None} for layer, r in single.items()}
    if len(single) >= 2 and any(per_layer.values()):  # a table without score_* columns has nothing to draw
        plot_category_lines(per_layer, figures / "categories_by_layer.png")
        lines += ["![score per category over single layers](figures/categories_by_layer.png)", ""]
    bench_rows = {_label(r): {k[6:]: r[k] for k in r if k.startswith("bench_") and r[k] is not None}
                  for r in done[:20]}
    if bench_rows and any(bench_rows.values()):
        plot_layer_benchmark_heatmap({k: v for k, v in bench_rows.items() if v}, figures / "benchmarks.png",
                                     title="Per benchmark, normalised (best 20 configurations)")
        lines += ["![scores per benchmark](figures/benchmarks.png)", ""]
    return lines


def _cost_front(out: Path, done: list[dict], summary: dict) -> list[str]:
    """With `objective.cost`: each completed trial's score against its cost, the front, and the front's table."""
    cost = summary.get("cost")
    points = [r for r in done if r.get("cost_ratio") is not None and r.get("unpenalised_score") is not None]
    if not cost or not points:
        return []
    best, baseline = summary.get("best"), summary.get("baseline")
    front = {entry["key"] for entry in cost["front"]}

    def point(row):
        return (row["cost_ratio"], row["unpenalised_score"]) if row and row.get("cost_ratio") is not None \
            and row.get("unpenalised_score") is not None else None

    plot_cost_front([point(r) for r in points], [point(r) for r in sorted(
        (r for r in points if r["key"] in front), key=lambda r: r["cost_ratio"])], out / "figures" / "cost_front.png",
        cost["measure"], best=point(best), baseline=point(baseline))
    cap = f", at most {cost['max_ratio']:g}x the baseline ({cost['left_out']} configurations left out)" \
        if cost["max_ratio"] is not None else ""
    lines = ["## Score against cost", "",
             f"Objective = score - {cost['penalty']:g} x ({cost['measure']} / {cost['baseline_cost']:g} - 1), the "
             f"baseline being {cost['baseline_key']}{cap}. The front holds the trials no other completed trial beats "
             "on both score and cost, cheapest first.", "", "![score against cost](figures/cost_front.png)", "",
             f"| layers | connector | {cost['measure']} | x baseline | score | objective |",
             "|---|---|---|---|---|---|"]
    by_key = {r["key"]: r for r in points}
    for entry in cost["front"]:
        row = by_key[entry["key"]]
        lines.append(f"| {','.join(map(str, row['layers']))} | {row['connector']} | {entry['cost']:g} | "
                     f"{entry['cost_ratio']:.2f} | {entry['score']:.4f} | {entry['objective']:.4f} |")
    return lines + [""]


def _ranked_table(done: list[dict]) -> list[str]:
    """The completed configurations, best first, with their category scores, steps and seconds."""
    cats = [k for k in CATEGORY_KEYS if any(r.get(k) is not None for r in done)]
    header = ["rank", "layers", "connector", "hyper-parameters", "score", *(k[6:] for k in cats), "steps", "seconds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, r in enumerate(done, 1):
        hyper = json.loads(r.get("hyperparameters") or "{}")
        cells = [str(rank), ",".join(map(str, r["layers"])), r["connector"],
                 ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in hyper.items()) or "-",
                 f"{r['score']:.4f}", *[f"{r[k]:.3f}" if r.get(k) is not None else "-" for k in cats],
                 str(r["steps_trained"]), f"{r['wall_seconds'] or 0:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
