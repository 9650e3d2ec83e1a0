"""Pictures people would rather look at than read: the LRS heatmap (more plots join it with the report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
