"""Pictures people would rather look at than read: the LRS heatmap (more plots join it with the report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    """Lay out, write and close a figure; returns the path."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_lrs_heatmap(matrix: np.ndarray, groups, path: str | Path, title: str = "LRS",
                     marked_layers: list[int] | None = None) -> Path:
    """Heatmap of an L x L layer similarity matrix (layers 1..L) with group boundaries and names.

    `groups`: objects or dicts with `name`, `layers`, `representative`. `marked_layers` (e.g. a search's chosen
    layers) are ticked in red on both axes.
    """
    plt = _pyplot()
    size = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, float(matrix.min())), vmax=1.0,
                      extent=(0.5, size + 0.5, size + 0.5, 0.5))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="similarity")
    for group in groups:
        get = group.get if isinstance(group, dict) else lambda key, g=group: getattr(g, key)
        first, last = min(get("layers")), max(get("layers"))
        ax.add_patch(plt.Rectangle((first - 0.5, first - 0.5), last - first + 1, last - first + 1,
                                   fill=False, edgecolor="white", linewidth=2))
        rep = get("representative")
        ax.plot([rep], [rep], marker="*", color="white", markersize=10, markeredgecolor="black")
        ax.text(last + 0.4, first - 0.1, f"{get('name')} {first}-{last}\nrep {rep}", color="white",
                fontsize=8, ha="right", va="top", fontweight="bold")
    for layer in marked_layers or []:
        ax.axvline(layer, color="red", linewidth=0.8, alpha=0.7)
        ax.axhline(layer, color="red", linewidth=0.8, alpha=0.7)
    step = max(1, size // 12)
    ticks = list(range(1, size + 1, step))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("layer")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=10)
    return _save(plt, fig, path)


def plot_layer_benchmark_heatmap(scores: dict[str, dict[str, float]], path: str | Path,
                                 title: str = "Scores per layer, normalised per benchmark") -> Path:
    """The paper's Fig. 2: rows = runs (e.g. one per layer), columns = benchmarks, each column min-max scaled.

    `scores`: run label -> {benchmark: score}. Raw scores are printed in the cells.
    """
    plt = _pyplot()
    runs = list(scores)
    benches = sorted({b for s in scores.values() for b in s})
    raw = np.array([[scores[r].get(b, np.nan) for b in benches] for r in runs], dtype=float)
    low, high = np.nanmin(raw, axis=0), np.nanmax(raw, axis=0)
    normalised = (raw - low) / np.where(high > low, high - low, 1.0)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(benches), 1.2 + 0.35 * len(runs)), dpi=110)
    image = ax.imshow(normalised, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="normalised per benchmark")
    ax.set_xticks(range(len(benches)), benches, rotation=35, ha="right")
    ax.set_yticks(range(len(runs)), runs)
    for i in range(len(runs)):
        for j in range(len(benches)):
            if np.isfinite(raw[i, j]):
                ax.text(j, i, f"{raw[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(title)
    return _save(plt, fig, path)


def plot_category_lines(per_layer: dict[int, dict[str, float]], path: str | Path,
                        title: str = "Score per category over layers",
                        bands: dict[int, dict[str, tuple[float, float]]] | None = None,
                        references: dict[str, float] | None = None, reference_label: str = "") -> Path:
    """The paper's Fig. 1b: one line per category, x = layer. `per_layer`: layer -> {category: score};
    `bands`: layer -> {category: (low, high)}, drawn as shaded intervals; `references`: category -> a score drawn
    as a dashed line of the category's colour (e.g. a fusion of several layers)."""
    plt = _pyplot()
    layers = sorted(per_layer)
    categories = sorted({c for s in per_layer.values() for c in s})
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for category in categories:
        line, = ax.plot(layers, [per_layer[layer].get(category, np.nan) for layer in layers], marker="o",
                        label=category)
        if bands:
            low = [bands.get(layer, {}).get(category, (np.nan, np.nan))[0] for layer in layers]
            high = [bands.get(layer, {}).get(category, (np.nan, np.nan))[1] for layer in layers]
            ax.fill_between(layers, low, high, color=line.get_color(), alpha=0.12)
        if references and references.get(category) is not None:
            ax.axhline(references[category], color=line.get_color(), linestyle="--", linewidth=1,
                       label=f"{category}, {reference_label}" if reference_label else None)
    ax.set_xlabel("layer")
    ax.set_ylabel("score")
    ax.set_xticks(layers)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return _save(plt, fig, path)


def plot_search_progress(scores: list[float | None], path: str | Path, baseline: float | None = None,
                         title: str = "Search progress") -> Path:
    """Score of each trial in the order they finished (pruned/failed as x marks at the bottom), best so far."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    xs = np.arange(1, len(scores) + 1)
    done = [(x, s) for x, s in zip(xs, scores) if s is not None]
    if done:
        ax.scatter([x for x, _ in done], [s for _, s in done], label="trial score", zorder=3)
        best, running = [], -np.inf
        for x, s in zip(xs, scores):
            running = max(running, s) if s is not None else running
            best.append(running if np.isfinite(running) else np.nan)
        ax.step(xs, best, where="post", color="tab:green", label="best so far")
    stopped = [x for x, s in zip(xs, scores) if s is None]
    if stopped:
        bottom = min((s for _, s in done), default=0.0)
        ax.scatter(stopped, [bottom] * len(stopped), marker="x", color="grey", label="stopped early / failed")
    if baseline is not None:
        ax.axhline(baseline, color="tab:red", linestyle="--", label="penultimate layer")
    ax.set_xlabel("trial (finish order)")
    ax.set_ylabel("objective")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return _save(plt, fig, path)


def plot_cost_front(points: list[tuple[float, float]], front: list[tuple[float, float]], path: str | Path,
                    measure: str, best: tuple[float, float] | None = None,
                    baseline: tuple[float, float] | None = None, title: str = "Score against cost") -> Path:
    """Each completed trial's score against its cost ratio to the baseline, the Pareto front (score up, cost down)
    connected and marked, the best by the objective and the baseline annotated."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    ax.scatter([x for x, _ in points], [y for _, y in points], color="tab:blue", alpha=0.6, label="trial", zorder=2)
    if front:
        ax.plot([x for x, _ in front], [y for _, y in front], color="tab:orange", marker="D", markersize=6,
                drawstyle="steps-post", label="front (no trial cheaper and better)", zorder=3)
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1, label="baseline cost")
    for point, text, color in ((best, "best objective", "tab:green"), (baseline, "baseline", "tab:red")):
        if point is not None:
            ax.scatter([point[0]], [point[1]], s=140, facecolors="none", edgecolors=color, linewidths=2, zorder=4)
            ax.annotate(text, point, textcoords="offset points", xytext=(8, -12), color=color, fontsize=8)
    ax.set_xlabel(f"{measure.replace('_', ' ')} / baseline's")
    ax.set_ylabel("score (before the penalty)")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return _save(plt, fig, path)
