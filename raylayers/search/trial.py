"""One trial of a search, in the Ray Train V2 pattern: a small driver function that Tune runs.

- `train_trial`: builds the trial's training config from the base recipe the search driver resolved, runs the
  two-stage recipe as a `TorchTrainer` (`raylayers.train.run_training`, run named after the trial id so a restored
  experiment resumes it), evaluates the model and reports `score` with `final: True`. During training the probe's
  validation answer accuracy reaches Tune as `score` at `global_step`, so ASHA can stop weak trials at its rungs.
- `table_trial` (`--objective table:FILE.parquet`): replays a configuration's measured learning curve from a table
  instead, so search strategies can be compared without training.
Both report the configuration's cost (`visual_tokens`, `connector_params`) with every result; with `objective.cost`
every `score` they report, the probe's and the final one, is the penalised objective (`raylayers.search.cost`), and
`unpenalised_score` keeps the score itself, so ASHA and the searcher rank what the summary ranks.

A trial runs in a working directory of its own: everything it reads arrives resolved, in `settings`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from raylayers.config import SearchConfig, TrainConfig, read_yaml, resolve_config_path, set_key, validate
from raylayers.errors import UserError
from raylayers.search.space import Candidate


# ================================================================================================ configs
def base_train_config(config: SearchConfig) -> TrainConfig:
    """The base recipe with the space's overrides applied, its paths resolved and validated (in the driver: trials
    get this object, never a file to read again from their own working directory)."""
    raw = read_yaml(resolve_config_path(config.base.config))
    for key, value in config.base.set.items():
        set_key(TrainConfig, raw, key, value)
    return validate(TrainConfig, raw, f"base config '{config.base.config}'")


def trial_train_config(base: TrainConfig, trial: dict, name: str) -> TrainConfig:
    """The training config of one trial: the base recipe (a TrainConfig) with its layers, connector and
    hyper-parameters, validated."""
    raw = base.model_dump()
    raw["model"].update(layers=[int(x) for x in trial["layers"]], connector=trial["connector"])
    for key, value in (trial.get("hyperparameters") or {}).items():
        set_key(TrainConfig, raw, key, value)
    raw["name"] = name
    return validate(TrainConfig, raw, "trial config")


# ================================================================================================ trials
def _report_final(scores_row: dict, extra: dict) -> None:
    from ray import tune

    tune.report({**scores_row, **extra, "final": True})


def _run_config(config: SearchConfig, base: TrainConfig, trial: dict, trial_id: str) -> TrainConfig:
    """The TrainConfig a trial's Ray Train run gets: `trial_train_config`, with the search's shared storage, and
    with no worker-group restarts of Ray Train's own: a worker failure ends the run and Tune retries the trial
    (`budget.retries`; it resumes from the last checkpoint). Ray Train restarting the worker group raced with ASHA
    stopping the trial: when the stop killed the worker before the controller, the dying controller started a new
    placement group that nothing removed, and every later trial waited for its CPUs (seen once in a fresh-clone
    demo, which hung)."""
    train_config = trial_train_config(base, trial, name=trial_id)
    train_config = train_config.model_copy(update={"checkpoint": train_config.checkpoint.model_copy(
        update={"max_failures": 0})})
    if config.budget.storage_path:
        train_config = train_config.model_copy(update={"resources": train_config.resources.model_copy(
            update={"storage_path": config.budget.storage_path.rstrip("/") + "/train"})})
    return train_config


_TRIALS_IN_THIS_PROCESS = 0
"""Trials this process has run before the current one (Tune reuses a trial's actor when the search cannot stop
trials early)."""


def train_trial(trial: dict, settings: dict) -> None:
    """A Tune trial: train (Ray Train + DeepSpeed), evaluate, report the objective.

    `settings` holds what the driver resolved (the search config, the base TrainConfig, absolute paths): a trial
    runs in a working directory of its own and reads no user path relative to it."""
    entered = time.time()
    import torch
    from ray import tune

    from raylayers import timings
    from raylayers.evaluate.run import evaluate_checkpoint
    from raylayers.train import run_training

    config = settings["config"]
    trial_id = tune.get_context().get_trial_id()
    out = Path(settings["out"]) / "trials" / trial_id
    timings.use(out)  # where this trial's time goes (benchmarks/trial_overhead.py reads it)
    global _TRIALS_IN_THIS_PROCESS
    # a reused actor (`reuse_actors`: searches without early stopping) started long before this trial: no boot paid
    booted = timings.process_started() if not _TRIALS_IN_THIS_PROCESS else entered
    timings.record("trial process", booted, entered, reused=_TRIALS_IN_THIS_PROCESS)
    _TRIALS_IN_THIS_PROCESS += 1
    timings.record("trial imports", entered, time.time())
    train_config = _run_config(config, settings["base"], trial, trial_id)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "attempts.log").open("a") as log:  # one line per attempt: retries are visible
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} attempt of {trial['key']}\n")
    started = time.perf_counter()
    objective = config.objective
    evaluation = {"bench_spec": settings["bench"], "mode": objective.mode, "batch_size": objective.batch_size,
                  "limit": objective.limit, "weights": objective.weights or None, "metric": objective.metric}
    costs = trial_costs(settings)
    extras = costs.extras(trial)  # the configuration's cost; every score Tune hears is the penalised objective
    with timings.span("training run"):  # rank 0 evaluates the trained model in memory, when it can
        summary = run_training(train_config, out, tune_callback=True, resume=True,  # a retried or restored trial
                               encoder_layers=_checked_depth(settings, train_config), evaluation=evaluation,
                               tune_score_offset=costs.offset(extras), tune_extras=extras)
    # a resumed run's summary holds only the stages it ran (none if its checkpoint was the end of training)
    steps = sum(stage.get("steps", 0) for stage in summary.get("stages", {}).values())
    resumed = int((summary.get("resumed_from") or {}).get("global_step") or 0)
    if summary.get("evaluated") and (out / "eval" / "scores.json").is_file():
        scores = json.loads((out / "eval" / "scores.json").read_text())
    else:  # evaluated here from the saved model (ZeRO-3, bf16, or a resumed run that had nothing left to train)
        torch.set_num_threads(max(1, train_config.resources.cpus_per_worker))
        with timings.span("evaluation"):
            scores = evaluate_checkpoint(out / "model", out=out / "eval", use_gpu=train_config.resources.use_gpu,
                                         **evaluation)
    final = summary.get("final_metrics", {})
    timings.record("trial", entered, time.time())
    timings.use(None)
    steps = max(steps, final.get("global_step") or 0, resumed)
    _report_final(costs.report(scores["row"], extras), {"global_step": steps,
                                  "probe_score": final.get("val_answer_accuracy"),
                                  "image_reliance": final.get("val_image_reliance"),
                                  "train_seconds": round(time.perf_counter() - started, 2)})


def trial_costs(settings: dict):
    """The search's costs the driver computed (`raylayers.search.cost.SearchCosts`); none known in a search
    restored from before they existed."""
    from raylayers.search.cost import SearchCosts

    return settings.get("costs") or SearchCosts(costs={})


def _checked_depth(settings: dict, config: TrainConfig) -> int | None:
    """The encoder depth the search driver found, when this trial trains the encoder and LM it checked (a
    hyper-parameter may swap either: then the trial checks them itself)."""
    base = settings["base"].model
    same = all(getattr(config.model, key) == getattr(base, key) for key in ("encoder", "lm", "trust_remote_code"))
    return settings.get("encoder_layers") if same else None


def load_table(path: str | Path) -> dict[str, list[dict]]:
    """A replay table: key -> its rows sorted by step (ARCHITECTURE.md: layers, connector, score, [score_*], [step])."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--objective table: '{path}' does not exist")
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as err:  # noqa: BLE001 (pyarrow raises several types for a file that is not parquet)
        raise UserError(f"--objective table: '{path}' is not a readable parquet file ({err})") from None
    columns = set(rows[0]) if rows else set()
    missing = [c for c in ("layers", "connector", "score") if c not in columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    hyper_columns = sorted(c for c in columns if c.startswith("hp_"))
    table: dict[str, list[dict]] = {}
    for number, row in enumerate(rows):
        layers, score = row["layers"], row["score"]
        if not isinstance(layers, list) or not layers or not all(
                isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in layers):
            raise UserError(f"{path}: row {number}: 'layers' must be a non-empty list of positive layer numbers, "
                            f"got {layers!r}")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or score != score:
            raise UserError(f"{path}: row {number}: 'score' must be a number, got {score!r}")
        hyper = tuple((c[3:], row[c]) for c in hyper_columns)
        key = Candidate(tuple(sorted(int(x) for x in row["layers"])), str(row["connector"]), hyper).key
        table.setdefault(key, []).append(row)
    for rows_of_key in table.values():
        rows_of_key.sort(key=lambda r: r.get("step") or 0)
    return table


def table_trial(trial: dict, settings: dict) -> None:
    """A Tune trial that replays measured scores: the learning curve step by step, then the final score."""
    from ray import tune

    table = load_table(settings["table"])
    rows = table.get(trial["key"])
    if rows is None:
        raise UserError(f"configuration {trial['key']} is not in the table {settings['table']}")
    # RAYLAYERS_REPLAY_STEP_SECONDS: a pause before each replayed report, as if training took that long (to watch a
    # replay search, or to stop one mid-way: a replayed trial otherwise takes milliseconds)
    pause = float(os.environ.get("RAYLAYERS_REPLAY_STEP_SECONDS") or 0)
    costs = trial_costs(settings)
    extras = costs.extras(trial)  # the configuration's cost; every score Tune hears is the penalised objective
    checkpoints = settings.get("replay_checkpoints")  # a scheduler that pauses trials resumes them from these
    start = _replayed_so_far() if checkpoints else 0
    for index, row in enumerate(rows[:-1]):
        if index < start:
            continue
        time.sleep(pause)
        metrics = costs.report({"score": float(row["score"]), "global_step": int(row.get("step") or 0)}, extras)
        if checkpoints:
            _report_with_replay_state(metrics, index + 1)
        else:
            tune.report(metrics)
    time.sleep(pause)
    last = rows[-1]
    extra = {k: float(v) for k, v in last.items() if k.startswith("score_") and v is not None}
    _report_final(costs.report({"score": float(last["score"]), **extra}, extras),
                  {"global_step": int(last.get("step") or 1)})


REPLAY_STATE = "replay.json"


def _report_with_replay_state(metrics: dict, replayed: int) -> None:
    """`tune.report` with a checkpoint holding how many rows of the curve the trial has reported (HyperBand pauses a
    trial at a milestone and resumes it from its checkpoint). Tune copies the checkpoint into the experiment during
    the call, so the temporary folder goes with it (Ray's documented pattern)."""
    import tempfile

    from ray import tune

    with tempfile.TemporaryDirectory(prefix="replay-") as folder:
        (Path(folder) / REPLAY_STATE).write_text(json.dumps({"replayed": replayed}))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _replayed_so_far() -> int:
    """The rows a resumed replay trial reported before it was paused (0 for a fresh one)."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return int(json.loads((Path(folder) / REPLAY_STATE).read_text())["replayed"])
