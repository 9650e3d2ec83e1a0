"""`raylayers search`: Ray Tune + Optuna over layer subsets and connectors, ASHA on the validation probe.

One trial = a small driver function (Ray Train V2 pattern): it builds the trial's training config, runs the
two-stage recipe as a `TorchTrainer` (`raylayers.train.run_training`, run named after the trial id so a restored
experiment resumes it), evaluates the model, and reports `score` with `final: True`. During training the probe's
validation answer accuracy reaches Tune as `score` at `global_step`, so ASHA can stop weak trials at its rungs.

With `--objective table:FILE.parquet` a trial looks its configuration up in a table of measured scores instead
(per step when the table has a `step` column), so search strategies can be compared without training.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from raylayers.errors import UserError
from raylayers.paths import resolve_local
from raylayers.search.space import (
    Candidate,
    LayerSpace,
    SearchConfig,
    build_layer_space,
    load_search_config,
    seeded_candidates,
)

RESULTS_FILE = "results.parquet"
BEST_CONFIG_FILE = "best_config.yaml"
SUMMARY_FILE = "search_summary.json"


# ================================================================================================ inputs
def ensure_lrs(config: SearchConfig, out: Path) -> tuple[dict, Path]:
    """The LRS the space is built from: the given lrs.json, or computed from `lrs.images` first."""
    from raylayers.lrs import load_lrs

    section = config.lrs
    path = Path(section.file) if section.file else out / "lrs" / "lrs.json"
    if path.is_file():
        return load_lrs(path), path
    if not section.images:
        raise UserError(f"lrs.file '{path}' does not exist and lrs.images is not set to compute it "
                        "(run `raylayers lrs` first, or give lrs.images)")
    from raylayers.encoders import VisionTower
    from raylayers.lrs import compute_lrs, parse_groups, write_lrs

    base = base_train_config(config)
    print(f"[raylayers] computing the LRS of {base.model.encoder} on {section.images} into {path.parent}",
          flush=True)
    tower = VisionTower.from_pretrained(base.model.encoder, trust_remote_code=base.model.trust_remote_code)
    result = compute_lrs(tower, section.images, metric=section.metric, num_groups=parse_groups(section.groups),
                         max_images=section.max_images)
    write_lrs(result, path.parent)
    return load_lrs(path), path


def base_train_config(config: SearchConfig):
    """The base recipe with the space's overrides applied, its paths resolved and validated (in the driver: trials
    get this object, never a file to read again from their own working directory)."""
    from raylayers.config import TrainConfig, load_config, read_yaml, resolve_config_path

    raw = read_yaml(resolve_config_path(config.base.config))
    overrides = [f"{key}={json.dumps(value) if not isinstance(value, str) else value}"
                 for key, value in config.base.set.items()]
    return load_config(TrainConfig, data=raw, overrides=overrides, where=f"base config '{config.base.config}'")


def trial_train_config(base, trial: dict, name: str):
    """The training config of one trial: the base recipe (a TrainConfig) with its layers, connector and
    hyper-parameters."""
    from raylayers.config import TrainConfig, apply_override, from_dict, to_dict

    raw = to_dict(base)
    raw["model"]["layers"] = [int(x) for x in trial["layers"]]
    raw["model"]["connector"] = trial["connector"]
    if trial["connector"] in ("concat",) and raw["model"].get("projector") is None:
        raw["model"]["projector"] = "mlp2x_gelu"
    for key, value in (trial.get("hyperparameters") or {}).items():
        apply_override(raw, f"{key}={value}")
    raw["name"] = name
    train = from_dict(TrainConfig, raw, "trial config")
    train.validate()
    return train


# ================================================================================================ trials
def _report_final(scores_row: dict, extra: dict) -> None:
    from ray import tune

    tune.report({**scores_row, **extra, "final": True})


def train_trial(trial: dict, settings: dict) -> None:
    """A Tune trial: train (Ray Train + DeepSpeed), evaluate, report the objective.

    `settings` holds what the driver resolved (the search config, the base TrainConfig, absolute paths): a trial
    runs in a working directory of its own and reads no user path relative to it."""
    import torch
    from ray import tune

    from raylayers.evaluate.run import evaluate_checkpoint
    from raylayers.train import run_training

    config = settings["config"]
    trial_id = tune.get_context().get_trial_id()
    out = Path(settings["out"]) / "trials" / trial_id
    train_config = trial_train_config(settings["base"], trial, name=trial_id)
    if config.budget.storage_path:
        train_config = dataclasses.replace(train_config, resources=dataclasses.replace(
            train_config.resources, storage_path=config.budget.storage_path.rstrip("/") + "/train"))
    out.mkdir(parents=True, exist_ok=True)
    with (out / "attempts.log").open("a") as log:  # one line per attempt: retries are visible
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} attempt of {trial['key']}\n")
    started = time.perf_counter()
    summary = run_training(train_config, out, tune_callback=True)
    steps = sum(stage.get("steps", 0) for stage in summary.get("stages", {}).values())
    torch.set_num_threads(max(1, train_config.resources.cpus_per_worker))
    objective = config.objective
    scores = evaluate_checkpoint(out / "model", settings["bench"], out / "eval", mode=objective.mode,
                                 batch_size=objective.batch_size, limit=objective.limit,
                                 use_gpu=train_config.resources.use_gpu, weights=objective.weights or None)
    final = summary.get("final_metrics", {})
    _report_final(scores["row"], {"global_step": steps or final.get("global_step", 0),
                                  "probe_score": final.get("val_answer_accuracy"),
                                  "image_reliance": final.get("val_image_reliance"),
                                  "train_seconds": round(time.perf_counter() - started, 2)})


def load_table(path: str | Path) -> dict[str, list[dict]]:
    """A replay table: key -> its rows sorted by step (DESIGN.md: layers, connector, score, [score_*], [step])."""
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
        if not row["layers"] or row["score"] is None:
            raise UserError(f"{path}: row {number} has no layers or no score")
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
    for row in rows[:-1]:
        tune.report({"score": float(row["score"]), "global_step": int(row.get("step") or 0)})
    last = rows[-1]
    extra = {k: float(v) for k, v in last.items() if k.startswith("score_") and v is not None}
    _report_final({"score": float(last["score"]), **extra}, {"global_step": int(last.get("step") or 1)})


# ================================================================================================ the search
def _storage(config: SearchConfig, out: Path) -> Path | str:
    return config.budget.storage_path or str(out / "tune")


def run_search(space_file: str | Path, out: str | Path, resume: bool = False, objective: str = "train",
               overrides: list[str] | None = None) -> dict:
    """Run (or resume) a search; returns the summary written to `search_summary.json`."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from raylayers.search.results import ResultsTable
    from raylayers.search.searcher import LayerSearcher

    out = Path(resolve_local(out))
    config = load_search_config(space_file, overrides)
    storage = _storage(config, out)
    experiment = f"{storage}/{config.name}"
    if resume and not tune.Tuner.can_restore(experiment):
        raise UserError(f"--resume: no search to resume in '{experiment}'")
    if not resume and (out / RESULTS_FILE).exists():
        raise UserError(f"'{out}' already holds a search; use --resume to continue it, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    lrs, lrs_path = ensure_lrs(config, out)
    layer_space = build_layer_space(config.space, lrs, f"'{space_file}'")
    # Everything a trial needs, resolved here in the user's process: a trial reads no user path of its own.
    settings = {"config": config, "out": str(out)}
    choices = {k: v["choice"] for k, v in config.space.hyperparameters.items() if "choice" in v}
    enumerable = len(choices) == len(config.space.hyperparameters)
    candidates = layer_space.candidates(choices) if enumerable else []
    if objective.startswith("table:"):
        settings["table"] = resolve_local(objective[len("table:"):])
        table = load_table(settings["table"])
        absent = [c.key for c in candidates if c.key not in table]
        if not enumerable:
            raise UserError("--objective table: the space's hyper-parameters must be choice lists")
        if absent:
            raise UserError(f"--objective table: configuration {absent[0]} is in the space but not in "
                            f"{settings['table']} ({len(absent)} missing; narrow the space or extend the table)")
        trainable = tune.with_parameters(table_trial, settings=settings)
    elif objective == "train":
        from raylayers.evaluate.bench import resolve_benchmarks
        from raylayers.train import check_before_launch

        base = base_train_config(config)  # fails here, before any trial, on a bad recipe
        check_before_launch(dataclasses.replace(base, model=dataclasses.replace(
            base.model, layers=[layer_space.layers[-1]], connector=layer_space.single_connectors[0]
            if layer_space.single_connectors else base.model.connector)))
        # the benchmark folders, found (and real-benchmark downloads imported) once, here
        bench = resolve_benchmarks(config.objective.bench, out)
        settings.update(base=base, bench=",".join(str(folder) for folder in bench))
        trainable = tune.with_parameters(train_trial, settings=settings)
    else:
        raise UserError(f"--objective '{objective}': use train or table:FILE.parquet")
    trainable = tune.with_resources(trainable, {"CPU": 0, "memory": 1})  # the driver waits; Train workers compute

    budget = config.budget
    _quiet_logs()
    first_trials = _first_trials(config, layer_space, candidates)
    searcher = LayerSearcher(layer_space, config.space.hyperparameters, first_trials, budget.prior_trials,
                             config.space.prior_temperature, sampler="random" if budget.searcher != "tpe" else "tpe",
                             seed=budget.seed, space_size=len(candidates) if enumerable else None,
                             results_path=out / RESULTS_FILE)
    if budget.grace_period > 0:
        scheduler = ASHAScheduler(time_attr="global_step", metric="score", mode="max",
                                  grace_period=budget.grace_period, reduction_factor=budget.reduction_factor,
                                  max_t=10**9)
    else:
        scheduler = FIFOScheduler()
    results = ResultsTable(out / RESULTS_FILE, out / "tensorboard", trials=budget.trials)

    from raylayers.train import _ray_init

    started_ray = not ray.is_initialized()
    _ray_init()
    started = time.perf_counter()
    print(f"[raylayers] search '{config.name}': {budget.trials} trials over "
          f"{len(candidates) if enumerable else 'continuous'} configurations, {budget.searcher}"
          f"{', ASHA from step ' + str(budget.grace_period) if budget.grace_period else ''}; out {out}", flush=True)
    run_config = tune.RunConfig(
        name=config.name, storage_path=str(storage), callbacks=[results],
        failure_config=tune.FailureConfig(max_failures=budget.retries), verbose=0)
    if resume:
        tuner = tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
    else:
        tuner = tune.Tuner(trainable, run_config=run_config, tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=budget.trials,
            max_concurrent_trials=budget.concurrency))
    tuner.fit()
    results.flush()
    summary = finish(config, out, lrs, lrs_path, layer_space, time.perf_counter() - started)
    if started_ray and not os.environ.get("RAY_ADDRESS"):
        ray.shutdown()
    if not summary["completed"]:  # everything is written; but a search without a result has failed
        raise UserError(failure_line(summary))
    return summary


def failure_line(summary: dict) -> str:
    """How many trials completed, and the first failure's error (the one line a failed search ends with)."""
    line = f"{summary['completed']} of {summary['trials']} trials completed"
    if summary.get("pruned"):
        line += f", {summary['pruned']} stopped early"
    if summary.get("first_error"):
        line += f"; {_first_error(summary)}"
    return line


def _first_error(summary: dict) -> str:
    first = summary["first_error"]
    return f"first error (trial {first['trial_id']}): {first['error']}"


class _NoTraceback:
    """A logging filter that keeps a record's message and drops its traceback."""

    def filter(self, record) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def _quiet_logs() -> None:
    """Tune logs every failed trial's whole traceback: the results line already says the error (the user's mistake
    as one line), and Tune's error file, whose path it prints, keeps the traceback. Optuna announces each study."""
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    if not any(isinstance(f, _NoTraceback) for f in controller.filters):
        controller.addFilter(_NoTraceback())


def _first_trials(config: SearchConfig, layer_space: LayerSpace, candidates: list[Candidate]) -> list[Candidate]:
    """What the searcher tries first: LRS priors for tpe, all configurations shuffled (random) or in order (grid)."""
    import random

    searcher = config.budget.searcher
    if searcher == "grid":
        return list(candidates)
    if searcher == "random":
        if not candidates:
            return []
        shuffled = list(candidates)
        random.Random(config.budget.seed).shuffle(shuffled)
        return shuffled
    if not config.space.priors:
        return seeded_candidates(layer_space, config.space.baseline)[-1:] if config.space.baseline else []
    return seeded_candidates(layer_space, config.space.baseline)


def finish(config: SearchConfig, out: Path, lrs: dict, lrs_path: Path, layer_space: LayerSpace,
           seconds: float) -> dict:
    """best_config.yaml, report.md with its plots, and the summary."""
    from raylayers.files import write_text_atomic
    from raylayers.search.report import write_report
    from raylayers.search.results import read_results

    rows = read_results(out / RESULTS_FILE)
    done = [r for r in rows if r["status"] == "completed" and r["score"] is not None]
    best = max(done, key=lambda r: r["score"]) if done else None
    baseline = next((r for r in done if list(r["layers"]) == [layer_space.penultimate]
                     and r["connector"] in layer_space.single_connectors), None)
    summary = {"name": config.name, "trials": len(rows), "completed": len(done),
               "pruned": sum(r["status"] == "pruned" for r in rows),
               "failed": sum(r["status"] == "failed" for r in rows),
               "seconds": round(seconds, 1), "lrs": str(lrs_path), "best": best, "baseline": baseline}
    failed = sorted((r for r in rows if r["status"] == "failed"), key=lambda r: r["order"])
    if failed:
        summary["first_error"] = {"trial_id": failed[0]["trial_id"], "error": failed[0]["error"]}
    if best is not None:
        _write_best_config(config, best, out / BEST_CONFIG_FILE)
        summary["best_config"] = str(out / BEST_CONFIG_FILE)
    reliance = [r["image_reliance"] for r in done if r.get("image_reliance") is not None]
    if reliance:
        summary["image_reliance_max"] = max(reliance)
    versus = _best_vs_baseline(out, best, baseline, config.objective.weights) if best and baseline else None
    if versus is not None:
        summary["best_vs_baseline"] = versus
    summary["report"] = str(write_report(out, rows, lrs, layer_space, summary))
    write_text_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _best_vs_baseline(out: Path, best: dict, baseline: dict, weights: dict | None) -> dict | None:
    """Paired bootstrap of the best trial against the baseline on the questions both answered (train objective)."""
    from raylayers.evaluate.significance import paired_bootstrap

    files = [out / "trials" / row["trial_id"] / "eval" / "per_question.parquet" for row in (best, baseline)]
    if best["trial_id"] == baseline["trial_id"] or not all(f.is_file() for f in files):
        return None  # the baseline won, or a table objective: no per-question answers to resample
    return paired_bootstrap(*files, weights=weights or None)


def _write_best_config(config: SearchConfig, best: dict, path: Path) -> None:
    import yaml

    from raylayers.config import to_dict

    trial = {"layers": list(best["layers"]), "connector": best["connector"],
             "hyperparameters": json.loads(best.get("hyperparameters") or "{}")}
    try:
        train = trial_train_config(base_train_config(config), trial, name="best")
    except UserError:  # a table objective over a base recipe that is not available here
        path.write_text(yaml.safe_dump({"model": {"layers": trial["layers"], "connector": trial["connector"]}}))
        return
    header = (f"# Best configuration of search '{config.name}' (score {best['score']:.4f}).\n"
              f"#   raylayers train --config {path} --out runs/best\n")
    path.write_text(header + yaml.safe_dump(to_dict(train), sort_keys=False))


def say_summary(summary: dict, stream=None) -> None:
    stream = stream or sys.stdout
    best, baseline = summary.get("best"), summary.get("baseline")
    print(f"search finished in {summary['seconds']:.0f}s: {summary['completed']} completed, "
          f"{summary['pruned']} stopped early, {summary['failed']} failed", file=stream)
    if summary.get("first_error"):
        print(f"{summary['failed']} of {summary['trials']} trials failed; {_first_error(summary)}", file=stream)
    if best:
        cats = ", ".join(f"{k[6:]} {v:.3f}" for k, v in best.items() if k.startswith("score_") and v is not None)
        print(f"best: layers {list(best['layers'])} with {best['connector']}: score {best['score']:.4f} ({cats})",
              file=stream)
    if baseline:
        cats = ", ".join(f"{k[6:]} {v:.3f}" for k, v in baseline.items()
                         if k.startswith("score_") and v is not None)
        print(f"penultimate-layer baseline {list(baseline['layers'])}: score {baseline['score']:.4f} ({cats})",
              file=stream)
    if summary.get("best_vs_baseline"):
        from raylayers.evaluate.significance import describe

        print(f"best minus baseline: {describe(summary['best_vs_baseline'])}", file=stream)
    from raylayers.search.report import caution

    warning = caution(summary)
    if warning:
        print(f"caution: {warning}", file=stream)
    print(f"report: {summary['report']}", file=stream)
