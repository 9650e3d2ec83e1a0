"""The search's results table: a Parquet row per trial, rewritten (atomically) as each trial ends.

Columns: trial_id, key, layers, connector, hyperparameters (JSON), status (completed | pruned | failed |
paused: screened and waiting, see `stopping.ScreenThenPromote`), steps_trained, wall_seconds, score (the objective;
null unless completed), probe_score (the last score Tune saw before the end), score_<category>, bench_<benchmark>,
error, order (the position in which trials finished or paused; a paused trial that finishes moves to the end); and the
configuration's cost: visual_tokens and connector_params (null when unknown, e.g. a replay table without them),
cost_ratio (its measure over the baseline's) and unpenalised_score (the score before the penalty; null unless
completed), both null without `objective.cost`, whose `score` and `probe_score` are the penalised objective. Also
writes the search's own TensorBoard scalars (score per trial, best so far).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ray.tune import Callback

from raylayers.errors import user_error_in
from raylayers.files import read_parquet_snapshot, write_parquet_atomic

BASE_COLUMNS = ("trial_id", "key", "layers", "connector", "hyperparameters", "status", "steps_trained",
                "wall_seconds", "score", "probe_score", "image_reliance", "error", "order")
COST_COLUMNS = ("visual_tokens", "connector_params", "cost_ratio", "unpenalised_score")


def read_results(path: str | Path) -> list[dict]:
    """The rows of `results.parquet` (none before the first trial ends); safe while a search rewrites it."""
    try:
        return read_parquet_snapshot(path).to_pylist()
    except FileNotFoundError:
        return []


def write_results(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa

    fixed = BASE_COLUMNS + COST_COLUMNS
    columns = list(fixed) + sorted({k for r in rows for k in r} - set(fixed))
    write_parquet_atomic(path, pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]))


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value) else None


class ResultsTable(Callback):
    """A Tune callback (driver side) keeping `results.parquet` current: one row per trial, exactly once."""

    def __init__(self, path: str | Path, tensorboard_dir: str | Path | None = None, trials: int | None = None,
                 costs=None):
        self.path = Path(path)
        self.costs = costs  # the search's costs (raylayers.search.cost.SearchCosts): a failed trial's cost too
        self.trials = trials  # the budget, for the progress lines
        self.tensorboard_dir = Path(tensorboard_dir) if tensorboard_dir else None
        self.rows: dict[str, dict] = {}
        self.probe: dict[str, float] = {}
        self.reliance: dict[str, float] = {}  # the last probe's image reliance (nats per answer), per trial
        self._writer = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_writer"] = None
        return state

    def setup(self, **info):
        self.rows = {r["trial_id"]: r for r in read_results(self.path)}  # a resumed search keeps its rows

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    # ---------------------------------------------------------------------------------------------- Tune hooks
    def on_trial_start(self, iteration, trials, trial, **info):
        config = trial.config or {}
        of = f" of {self.trials}" if self.trials else ""
        print(f"[raylayers] trial {trial.trial_id} ({len(trials)}{of}): layers {list(config.get('layers', []))} "
              f"{config.get('connector')}{_hyper_text(config)} started", flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "score" in result and not result.get("final"):
            self.probe[trial.trial_id] = result["score"]
            if _number(result.get("val_image_reliance")) is not None:
                self.reliance[trial.trial_id] = result["val_image_reliance"]
            extra = "".join(f", {label} {result[key]:.3f}" for key, label in (
                ("val_loss", "validation loss"), ("val_image_reliance", "image reliance (nats/answer)"))
                if _number(result.get(key)) is not None)
            print(f"[raylayers] trial {trial.trial_id} step {result.get('global_step')}: probe score "
                  f"{result['score']:.3f}{extra}", flush=True)

    def on_step_end(self, iteration, trials, **info):
        """A trial paused at a screen (`stopping.ScreenThenPromote`) gets a `paused` row when it pauses: the steps
        it trained count where they were spent; its row is replaced when it completes or is stopped."""
        for trial in trials:
            if trial.status == "PAUSED" and (self.rows.get(trial.trial_id) or {}).get("status") != "paused":
                self._record(trial, "paused", trial.last_result or {}, None)

    def on_experiment_end(self, trials, **info):
        """A `paused` row whose trial Tune no longer holds (a search killed after the pause and before Tune saved its
        state forgets the trial; the resume does not train it again) ends as `pruned` at its screen step."""
        held = {t.trial_id for t in trials if t.status == "PAUSED"}
        orphans = [r for r in self.rows.values() if r["status"] == "paused" and r["trial_id"] not in held]
        for row in orphans:
            row["status"] = "pruned"
        if orphans:
            write_results(self.path, sorted(self.rows.values(), key=lambda r: r["order"]))

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        self._record(trial, "completed" if result.get("final") else "pruned", result, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial, "failed", trial.last_result or {}, _error_line(trial))

    # ---------------------------------------------------------------------------------------------- rows
    def _record(self, trial, status: str, result: dict, error: str | None) -> None:
        config = trial.config or {}
        row = {
            "trial_id": trial.trial_id, "key": config.get("key"),
            "layers": [int(x) for x in config.get("layers", [])], "connector": config.get("connector"),
            "hyperparameters": json.dumps(config.get("hyperparameters") or {}, sort_keys=True),
            "status": status, "steps_trained": int(result.get("global_step") or 0),
            "wall_seconds": _number(result.get("time_total_s")),
            "score": _number(result.get("score")) if status == "completed" else None,
            "probe_score": _number(self.probe.get(trial.trial_id)),
            "image_reliance": _number(result.get("image_reliance", self.reliance.get(trial.trial_id))),
            "error": error, "order": self._order(trial.trial_id),
        }
        costs = getattr(self, "costs", None)  # a table restored from before costs existed has none
        known = {**(costs.extras(config) if costs is not None and config.get("layers") else {}),
                 **{k: v for k, v in result.items() if k in COST_COLUMNS[:3]}}
        row.update({k: _number(known.get(k)) for k in COST_COLUMNS[:3]})
        for column in COST_COLUMNS[:2]:
            row[column] = int(row[column]) if row[column] is not None else None
        row["unpenalised_score"] = _number(result.get("unpenalised_score")) if status == "completed" else None
        if status == "completed":
            row.update({k: _number(v) for k, v in result.items()
                        if k.startswith(("score_", "bench_")) or k == "train_seconds"})
        self.rows[trial.trial_id] = row
        write_results(self.path, sorted(self.rows.values(), key=lambda r: r["order"]))
        if status == "paused":
            print(f"[raylayers] trial {trial.trial_id}: layers {row['layers']} {row['connector']}{_hyper_text(config)}"
                  f" -> paused at step {row['steps_trained']} (screened)", flush=True)
            return
        self._tensorboard(row)
        described = f"score {row['score']:.4f}" if row["score"] is not None else status
        if error:
            described += f": {error}"
        print(f"[raylayers] trial {trial.trial_id}: layers {row['layers']} {row['connector']}{_hyper_text(config)} "
              f"-> {described} "
              f"({sum(r['status'] != 'paused' for r in self.rows.values())} done)", flush=True)

    def _order(self, trial_id: str) -> int:
        """Where a row stands in `order`: when it was first recorded, or, for a paused trial that has now finished,
        after every row recorded so far (its later steps were trained then)."""
        if trial_id not in self.rows:
            return len(self.rows)
        if self.rows[trial_id]["status"] == "paused":
            return max(r["order"] for r in self.rows.values()) + 1
        return self.rows[trial_id]["order"]

    def _tensorboard(self, row: dict) -> None:
        if self.tensorboard_dir is None:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.tensorboard_dir))
        step = row["order"]
        if row["score"] is not None:
            self._writer.add_scalar("search/score", row["score"], step)
            best = max(r["score"] for r in self.rows.values() if r["score"] is not None)
            self._writer.add_scalar("search/best_score", best, step)
        self._writer.add_scalar("search/steps_trained", row["steps_trained"], step)
        self._writer.add_text("search/trial", f"{row['trial_id']}: {row['key']} {row['status']}", step)
        self._writer.flush()


def _error_line(trial) -> str:
    """The last meaningful line of a failed trial's error (the exception), for the table."""
    text = ""
    path = getattr(trial, "error_file", None)
    try:
        if path and Path(path).is_file():
            text = Path(path).read_text(errors="replace")
    except OSError:
        text = ""
    if not text:
        text = str(getattr(trial, "error_msg", "") or "")
    message = user_error_in(text)  # the user's mistake, as the command line would say it
    if message:
        return message[:500]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line[:500]
    return (lines[-1] if lines else f"failed at {time.strftime('%H:%M:%S')}")[:500]


def _hyper_text(config: dict) -> str:
    """A trial's hyper-parameters for its lines (' stage2.learning_rate=0.001'), empty without any: trials that share
    layers and connector are told apart."""
    return "".join(f" {key}={value:g}" if isinstance(value, float) else f" {key}={value}"
                   for key, value in sorted((config.get("hyperparameters") or {}).items()))
