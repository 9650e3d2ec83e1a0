"""Paper-style plots over several evaluated runs (e.g. one per layer): the layers x benchmarks heatmap normalised
per benchmark (the paper's Fig. 2) and the per-category line plot over layers (its Fig. 1b).

    python -m raylayers.evaluate.compare --runs runs/eval-layer3 runs/eval-layer9 runs/eval-layer11 --out runs/plots

(a module entry point rather than a `raylayers` subcommand: ARCHITECTURE.md's command list is a contract.)"""

from __future__ import annotations

import sys
from pathlib import Path

from raylayers.errors import UserError
from raylayers.files import read_user_json


def _scores_file(path: Path) -> Path:
    for candidate in (path, path / "scores.json", path / "eval" / "scores.json"):
        if candidate.is_file():
            return candidate
    raise UserError(f"'{path}': no scores.json (give `raylayers eval --out` folders or their scores.json)")


def _layers_of(scores: dict) -> list[int] | None:
    checkpoint = scores.get("checkpoint")
    meta = Path(checkpoint) / "raylayers_model.json" if checkpoint else None
    if meta is not None and meta.is_file():
        data = read_user_json(meta, "checkpoint metadata")
        return list((data.get("vision_layers") if isinstance(data, dict) else None) or []) or None
    return None


def compare_runs(runs: list[str | Path], out: str | Path) -> dict[str, Path]:
    """Write `benchmarks_by_run.png` and (when every run reads one layer) `categories_by_layer.png`."""
    from raylayers.plots import plot_category_lines, plot_layer_benchmark_heatmap

    if len(runs) < 2:
        raise UserError("--runs needs at least two evaluated runs to compare")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_run, per_layer = {}, {}
    for run in runs:
        scores = read_user_json(_scores_file(Path(run)), "scores file")
        if not isinstance(scores, dict) or not {"benchmarks", "categories"} <= set(scores):
            raise UserError(f"scores file '{_scores_file(Path(run))}' is not one `raylayers eval` wrote (no "
                            "benchmarks or categories)")
        layers = _layers_of(scores)
        label = f"layer {layers[0]}" if layers and len(layers) == 1 else (
            "layers " + "+".join(map(str, layers)) if layers else Path(run).name)
        if label in per_run:
            label = f"{label} ({Path(run).name})"
        per_run[label] = {name: b["score"] for name, b in scores["benchmarks"].items()}
        if layers and len(layers) == 1:
            per_layer[layers[0]] = dict(scores["categories"])
    written = {"heatmap": plot_layer_benchmark_heatmap(
        dict(sorted(per_run.items(), key=lambda kv: _sort_key(kv[0]))), out / "benchmarks_by_run.png")}
    if len(per_layer) == len(runs):
        written["lines"] = plot_category_lines(per_layer, out / "categories_by_layer.png")
    return written


def _sort_key(label: str):
    parts = label.split()
    return (0, int(parts[1])) if len(parts) > 1 and parts[0] == "layer" and parts[1].isdigit() else (1, label)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m raylayers.evaluate.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="`raylayers eval --out` folders (or scores.json)")
    parser.add_argument("--out", required=True, help="folder for the PNG plots")
    args = parser.parse_args(argv)
    try:
        written = compare_runs(args.runs, args.out)
    except UserError as err:
        print(f"compare: error: {err}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(Path(p).resolve()) for p in written.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
