"""Benchmark folders: finding them from `--bench DIR_OR_NAME`, reading and validating `questions.parquet`.

A benchmark folder (ARCHITECTURE.md, "Files raylayers writes") holds `questions.parquet` (question_id, image,
question, answer, task, category, options, plus metric-specific extras) and `meta.json` naming its metric.
`--bench` accepts:
- one benchmark folder;
- a folder of benchmark folders (a world's `bench/`), or a world folder (its `bench/` is used);
- a local copy of a real benchmark in a published parquet layout (imported on the fly, see `importers`);
- `hf:DATASET[:CONFIG[:SPLIT]]`: a benchmark in the Hugging Face cache or a local dataset folder, loaded offline
  through `datasets` and imported the same way (`importers/hub.py`);
- a name: a task of the demo world (`count`, `ocr`, ...) or `world` for all of them, looked up under
  `runs/demo/world/bench` (or `$RAYLAYERS_WORLD/bench`);
- several of the above, comma-separated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from raylayers.errors import UserError
from raylayers.evaluate.schema import CATEGORIES, REQUIRED_COLUMNS

DEFAULT_WORLD = Path("runs/demo/world")


@dataclass
class Benchmark:
    """One benchmark: its rows in file order (image as a path string or bytes) and its meta."""

    name: str
    folder: Path
    meta: dict
    rows: list[dict] = field(repr=False)

    @property
    def metric(self) -> str:
        return self.meta["metric"]

    @property
    def category(self) -> str:
        return self.meta["category"]

    @property
    def answer_type(self) -> str:
        from raylayers.evaluate.metrics import MULTIPLE_CHOICE_METRICS

        return self.meta.get("answer_type") or ("multiple_choice" if self.metric in MULTIPLE_CHOICE_METRICS
                                                else "short")

    def image_source(self, row: dict) -> str | bytes | None:
        """What `open_image` takes: bytes as they are, a path resolved against the folder."""
        from raylayers.image_source import image_cell

        return image_cell(row.get("image"), self.folder)


def load_benchmark(folder: str | Path, limit: int | None = None) -> Benchmark:
    """Read and validate a benchmark folder; errors name the file and the missing columns or keys."""
    import pyarrow.parquet as pq

    from raylayers.evaluate.metrics import METRICS, MULTIPLE_CHOICE_METRICS
    from raylayers.files import read_user_json

    folder = Path(folder)
    questions, meta_path = folder / "questions.parquet", folder / "meta.json"
    for path in (questions, meta_path):
        if not path.is_file():
            raise UserError(f"'{folder}' is not a benchmark folder: {path.name} is missing")
    meta = read_user_json(meta_path, "benchmark meta")
    if not isinstance(meta, dict) or "metric" not in meta:
        raise UserError(f"{meta_path}: needs a 'metric' key (one of {', '.join(sorted(METRICS))})")
    meta = _with_official_metric(meta)
    if meta["metric"] not in METRICS:
        raise UserError(f"{meta_path}: unknown metric '{meta['metric']}' (valid: {', '.join(sorted(METRICS))})")
    try:
        schema = pq.read_schema(questions)
    except Exception as err:  # noqa: BLE001 (pyarrow raises several types for a file that is not parquet)
        raise UserError(f"{questions}: not a readable parquet file ({err})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
    if meta["metric"] in MULTIPLE_CHOICE_METRICS and "options" not in schema.names:
        missing.append("options")
    if missing:
        raise UserError(f"{questions}: missing column(s) {', '.join(missing)} (has: {', '.join(schema.names)})")
    table = pq.read_table(questions)
    if limit is not None:
        table = table.slice(0, limit)
    rows = table.to_pylist()
    if not rows:
        raise UserError(f"{questions}: the benchmark is empty")
    ids = [str(r["question_id"]) for r in rows]
    if len(set(ids)) != len(ids):
        seen, dupes = set(), []
        for qid in ids:
            if qid in seen:
                dupes.append(qid)
            seen.add(qid)
        raise UserError(f"{questions}: duplicate question_id(s) {', '.join(dupes[:5])}")
    for row, qid in zip(rows, ids):
        row["question_id"] = qid
        row["options"] = list(row.get("options") or [])
        row["answer"] = "" if row["answer"] is None else row["answer"]
    category = meta.get("category") or rows[0]["category"]
    if category not in CATEGORIES:
        raise UserError(f"{meta_path}: category '{category}' is not one of {', '.join(CATEGORIES)}")
    meta = {**meta, "category": category}
    name = meta.get("task") or folder.name
    return Benchmark(name=str(name), folder=folder, meta=meta, rows=rows)


def _with_official_metric(meta: dict) -> dict:
    """A folder imported before the benchmarks had official scorers names a generic metric (mc_accuracy,
    exact_match) in its meta.json; its `layout` says which benchmark it is, so score it with that one's metric."""
    from raylayers.evaluate.importers import LAYOUTS

    layout = LAYOUTS.get(str(meta.get("layout")))
    if layout is not None and meta["metric"] in ("mc_accuracy", "exact_match") and layout.metric != meta["metric"]:
        return {**meta, "metric": layout.metric}
    return meta


def _world_root() -> Path:
    from raylayers.paths import resolve_local

    return Path(resolve_local(os.environ.get("RAYLAYERS_WORLD", str(DEFAULT_WORLD))))


def _import_hub(part: str, out: Path | None) -> Path:
    """An `hf:` spec's benchmark, loaded offline and imported into `out/bench/`."""
    from raylayers.evaluate.importers.hub import import_hub_benchmark

    if out is None:
        raise UserError(f"--bench '{part}': a Hugging Face dataset must be imported; give an output folder")
    return import_hub_benchmark(part, Path(out) / "bench")


def resolve_benchmarks(spec: str, out: Path | None = None) -> list[Path]:
    """The benchmark folders `--bench` names, importing real-benchmark layouts into `out/bench/`."""
    from raylayers.evaluate.importers import (
        LAYOUTS,
        detect_layout,
        import_benchmark,
        is_benchmark_folder,
    )

    folders: list[Path] = []
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        if part.startswith("hf:"):
            folders.append(_import_hub(part, out))
            continue
        path = Path(part)
        if not path.exists() and os.sep not in part:  # a name
            bench_root = _world_root() / "bench"
            if part == "world":
                path = bench_root
            elif (bench_root / part).is_dir():
                path = bench_root / part
            else:
                known = sorted(p.name for p in bench_root.iterdir() if p.is_dir()) if bench_root.is_dir() else []
                raise UserError(f"--bench '{part}': no such folder, and not a world task under '{bench_root}' "
                                f"(known: {', '.join(['world', *known]) if known else 'none; run raylayers demo'})")
        if not path.exists():
            raise UserError(f"--bench '{part}': no such file or folder")
        if not path.is_dir():
            raise UserError(f"--bench '{part}': not a folder")
        if is_benchmark_folder(path):
            folders.append(path)
            continue
        if (path / "bench").is_dir():  # a world folder
            path = path / "bench"
        children = sorted(p for p in path.iterdir() if p.is_dir() and is_benchmark_folder(p))
        if children:
            folders.extend(children)
            continue
        layout = detect_layout(path)
        if layout is None:
            raise UserError(f"--bench '{part}': neither a benchmark folder (questions.parquet + meta.json), nor a "
                            f"folder of them, nor a recognised benchmark layout ({', '.join(sorted(LAYOUTS))})")
        if out is None:
            raise UserError(f"--bench '{part}': a {layout} download must be imported; give an output folder")
        target = Path(out) / "bench" / layout
        print(f"[raylayers] importing {layout} from {path} into {target}", flush=True)
        import_benchmark(path, target, layout=layout)
        folders.append(target)
    if not folders:
        raise UserError(f"--bench '{spec}': names no benchmark")
    names = [f.name for f in folders]
    if len(set(names)) != len(names):
        raise UserError(f"--bench '{spec}': two benchmarks share a folder name ({', '.join(names)})")
    return folders
