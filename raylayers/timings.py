"""Where a run's wall time goes: named spans, written by every process of a run into one `timings.jsonl`.

A training run (its rank-0 worker and the driver) and a search trial (its Tune process and evaluation) record what
they spend outside the step loop (imports, model build, data preparation, DeepSpeed set-up, checkpoints, the model
save, the evaluation's load) and what they spend in it (training steps, probes, reports), as wall-clock spans
(`time.time()`, so spans from different processes line up). `benchmarks/trial_overhead.py` turns them into the
per-trial breakdown and the fixed cost. Each line: {"span", "start", "end", "seconds", "count", "pid"}; a span
recorded many times (a step, a probe) is summed per stage into one line with its `count`.

Nothing is recorded until a process calls `use(folder)`; `span` is then a context manager costing two clock reads
and, on exit, one short appended line (O_APPEND writes of a line are atomic on a local file system).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

TIMINGS_FILE = "timings.jsonl"

_folder: Path | None = None
_totals: dict[str, list] = defaultdict(lambda: [0.0, 0, None])  # name -> [seconds, count, first start]


def use(folder: str | Path | None) -> None:
    """Record this process's spans into `folder/timings.jsonl` from now on (None: stop recording)."""
    global _folder
    _folder = Path(folder) if folder is not None else None
    _totals.clear()


def record(name: str, start: float, end: float, count: int = 1, **extra) -> None:
    """One span line (no-op unless `use` was called)."""
    if _folder is None:
        return
    line = {"span": name, "start": round(start, 4), "end": round(end, 4), "seconds": round(end - start, 4),
            "count": count, "pid": os.getpid(), **extra}
    _folder.mkdir(parents=True, exist_ok=True)
    with open(_folder / TIMINGS_FILE, "a") as handle:
        handle.write(json.dumps(line) + "\n")


@contextmanager
def span(name: str, **extra):
    """Time the block as one span named `name`."""
    start = time.time()
    try:
        yield
    finally:
        record(name, start, time.time(), **extra)


@contextmanager
def adding(name: str):
    """Time the block and add it to the running total of `name` (written by `flush_totals`)."""
    start = time.time()
    try:
        yield
    finally:
        total = _totals[name]
        total[0] += time.time() - start
        total[1] += 1
        total[2] = start if total[2] is None else total[2]


def flush_totals(**extra) -> None:
    """Write each running total as one line (its seconds summed, `start` its first start) and reset them."""
    for name, (seconds, count, start) in list(_totals.items()):
        record(name, start, start + seconds, count=count, summed=True, **extra)
    _totals.clear()


def read(folder: str | Path) -> list[dict]:
    """Every span of `folder/timings.jsonl` ([] when there is none)."""
    path = Path(folder) / TIMINGS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def process_started() -> float:
    """When this process started (wall clock)."""
    import psutil  # a dependency of deepspeed and of Ray's dashboard

    return psutil.Process().create_time()
