"""`raylayers search`: Ray Tune + Optuna over layer subsets and connectors, ASHA on the validation probe.

`run_search` resolves everything once, in the user's process (the space, the LRS, the base recipe, the benchmark
folders), builds the Tune trainable of the objective (`raylayers.search.trial`: real training, or a replay table),
the LRS-guided searcher (`searcher.py`) and ASHA, runs Tune, and ends with `summary.finish`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ray.tune.stopper import Stopper

from raylayers.config import SearchConfig
from raylayers.errors import UserError
from raylayers.interrupts import blocking
from raylayers.paths import resolve_local
from raylayers.search.results import ResultsTable
from raylayers.search.space import Candidate, LayerSpace, build_layer_space, load_search_config, seeded_candidates
from raylayers.search.summary import RESULTS_FILE, failure_line, finish
from raylayers.search.trial import base_train_config, load_table, table_trial, train_trial, trial_train_config


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
                         max_images=section.max_images, batch_size=section.batch_size)
    write_lrs(result, path.parent)
    return load_lrs(path), path


# ================================================================================================ the search
def _storage(config: SearchConfig, out: Path) -> Path | str:
    return config.budget.storage_path or str(out / "tune")


def can_resume(space_file: str | Path, out: str | Path, overrides: list[str] | None = None) -> bool:
    """Whether `out` holds a search of this space that Tune can restore (`--resume`)."""
    from ray import tune

    config = load_search_config(space_file, overrides)
    return tune.Tuner.can_restore(f"{_storage(config, Path(resolve_local(out)))}/{config.name}")


def run_search(space_file: str | Path, out: str | Path, resume: bool = False, objective: str = "train",
               overrides: list[str] | None = None, stopper=None, search_factory=None,
               replay_checkpoints: bool = False) -> dict:
    """Run (or resume) a search; returns the summary written to `search_summary.json`. A search in which no trial
    completed raises `UserError` after writing everything (`failure_line`). `stopper`: a Tune `Stopper` that may
    end the search early (the search-efficiency benchmark stops at its target). `search_factory(config, layer_space,
    candidates)`: a (Tune searcher, Tune scheduler) pair instead of ours (the benchmark's stock baselines).
    `replay_checkpoints` (replay tables): each replayed step reports a checkpoint, so that a scheduler that pauses
    trials (HyperBand) resumes them where they were."""
    import ray
    from ray import tune

    from raylayers.ray_session import init_ray

    out = Path(resolve_local(out))
    config = load_search_config(space_file, overrides)
    experiment = f"{_storage(config, out)}/{config.name}"
    if resume and not tune.Tuner.can_restore(experiment):
        raise UserError(f"--resume: no search to resume in '{experiment}'")
    if not resume and (out / RESULTS_FILE).exists():
        raise UserError(f"'{out}' already holds a search; use --resume to continue it, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    lrs, lrs_path = ensure_lrs(config, out)
    layer_space = build_layer_space(config.space, lrs, f"'{space_file}'")
    candidates = _enumerable_candidates(config, layer_space)
    trainable, costs = _trainable(config, layer_space, candidates, objective, out, replay_checkpoints)
    if candidates is not None:  # objective.cost.max_ratio: what costs too much is never proposed nor trained
        candidates = [c for c in candidates if not costs.is_left_out(c)]
    if search_factory is not None and costs.left_out:  # a caller's searcher is never told what max_ratio leaves out
        raise ValueError(f"search_factory with objective.cost.max_ratio: {len(costs.left_out)} configurations are "
                         "left out, which the factory's searcher could still propose")
    started_ray = not ray.is_initialized()
    init_ray()
    started = time.perf_counter()
    budget = config.budget
    print(f"[raylayers] search '{config.name}': {budget.trials} trials over "
          f"{len(candidates) if candidates is not None else 'continuous'} configurations, {budget.searcher}"
          f"{_stopping_text(config)}{costs.describe()}; "
          f"out {out}", flush=True)
    results = ResultsTable(out / RESULTS_FILE, out / "tensorboard", trials=budget.trials, costs=costs)
    _quiet_logs()  # before a study is made or restored (Optuna announces each)
    if resume:
        tuner = tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
    else:
        tuner = _new_tuner(config, layer_space, candidates, trainable, out, results, stopper,
                           reuse_actors=objective.startswith("table:"), search_factory=search_factory, costs=costs)
    blocking(tuner.fit)  # in a helper thread: Ctrl-C reaches us (interrupts.py), not Tune's quiet early end
    results.flush()
    summary = finish(config, out, lrs, lrs_path, layer_space, time.perf_counter() - started, costs=costs)
    if started_ray and not os.environ.get("RAY_ADDRESS"):
        ray.shutdown()
    if not summary["completed"]:  # everything is written; but a search without a result has failed
        raise UserError(failure_line(summary))
    return summary


class StopAtScore(Stopper):
    """A Tune stopper that ends the whole search once a completed trial (a result with `final: True`) scores at or
    above `target`. Tune checks `stop_all` after every event and then terminates what is still running (as
    TERMINATED, not as errors), finishes the searcher, and `tuner.fit()` returns: the results table and the summary
    are written as after a full budget."""

    def __init__(self, target: float):
        self.target = target
        self.reached = False

    def __call__(self, trial_id: str, result: dict) -> bool:
        if result.get("final") and result.get("score") is not None and result["score"] >= self.target:
            self.reached = True
            # Stop this trial too: Tune then completes it at once (searcher, scheduler, the results table), before
            # stop_all ends the search. Left running, it would be terminated by stop_all unrecorded.
            return True
        return False

    def stop_all(self) -> bool:
        return self.reached


def _enumerable_candidates(config: SearchConfig, layer_space: LayerSpace) -> list[Candidate] | None:
    """Every configuration of the space, or None when a hyper-parameter is continuous."""
    choices = {k: v["choice"] for k, v in config.space.hyperparameters.items() if "choice" in v}
    if len(choices) != len(config.space.hyperparameters):
        return None
    return layer_space.candidates(choices)


def _trainable(config: SearchConfig, layer_space: LayerSpace, candidates: list[Candidate] | None, objective: str,
               out: Path, replay_checkpoints: bool = False):
    """The Tune trainable of the objective and the search's costs (`raylayers.search.cost`), with everything a trial
    needs resolved here, in the user's process: a trial reads no user path of its own."""
    from ray import tune

    from raylayers.search.cost import table_costs, trained_costs

    settings = {"config": config, "out": str(out)}
    if objective.startswith("table:"):
        settings["table"] = resolve_local(objective[len("table:"):])
        settings["replay_checkpoints"] = replay_checkpoints or screening(config)  # paused trials resume from them
        table = load_table(settings["table"])
        if candidates is None:
            raise UserError("--objective table: the space's hyper-parameters must be choice lists")
        absent = [c.key for c in candidates if c.key not in table]
        if absent:
            raise UserError(f"--objective table: configuration {absent[0]} is in the space but not in "
                            f"{settings['table']} ({len(absent)} missing; narrow the space or extend the table)")
        settings["costs"] = table_costs(config, layer_space, table, settings["table"])
        trainable = tune.with_parameters(table_trial, settings=settings)
    elif objective == "train":
        from raylayers.evaluate.bench import resolve_benchmarks
        from raylayers.train import check_before_launch

        base = base_train_config(config)  # fails here, before any trial, on a bad recipe
        checked = check_before_launch(base.model_copy(update={"model": base.model.model_copy(update={
            "layers": [layer_space.layers[-1]],
            "connector": layer_space.single_connectors[0] if layer_space.single_connectors
            else base.model.connector})}))
        # the benchmark folders, found (and real-benchmark downloads imported) once, here
        bench = resolve_benchmarks(config.objective.bench, out)
        settings.update(base=base, bench=",".join(str(folder) for folder in bench),
                        encoder_layers=checked["encoder_layers"], costs=trained_costs(
                            config, layer_space, lambda trial: trial_train_config(base, trial, name="cost").model))
        trainable = tune.with_parameters(train_trial, settings=settings)
    else:
        raise UserError(f"--objective '{objective}': use train or table:FILE.parquet")
    # the driver waits; Train workers compute
    return tune.with_resources(trainable, {"CPU": 0, "memory": 1}), settings["costs"]


def _new_tuner(config: SearchConfig, layer_space: LayerSpace, candidates: list[Candidate] | None, trainable,
               out: Path, results, stopper, reuse_actors: bool = False, search_factory=None, costs=None):
    """A Tuner with our search (`_our_search`) or the caller's `search_factory`, and our callbacks.
    `reuse_actors` (replay tables): a trial reuses the last trial's actor instead of starting one (~1 s each).
    Training trials reuse it too when nothing stops a trial early (FIFO: a trial's thread has always ended when its
    actor is handed on), which saves each later trial its process start and imports (~2.4 s on 2 cores). With ASHA a
    stopped trial's training thread may still be inside `fit()`: Tune could not reset that actor, so it is not
    reused.
    `candidates`: those `costs` (objective.cost.max_ratio) leaves in; the searcher is told what it leaves out."""
    from ray import tune

    budget = config.budget
    factory = search_factory or _our_search(out, costs)
    searcher, scheduler = factory(config, layer_space, candidates)
    reuse_actors = reuse_actors or type(scheduler) is tune.schedulers.FIFOScheduler
    run_config = tune.RunConfig(name=config.name, storage_path=str(_storage(config, out)), callbacks=[results],
                                failure_config=tune.FailureConfig(max_failures=budget.retries), stop=stopper,
                                verbose=0)
    return tune.Tuner(trainable, run_config=run_config, tune_config=tune.TuneConfig(
        search_alg=searcher, scheduler=scheduler, num_samples=budget.trials,
        max_concurrent_trials=budget.concurrency, reuse_actors=reuse_actors))


def _our_search(out: Path, costs):
    """The search_factory of our own search: the LRS-guided searcher (told what `costs` leaves out) and ASHA on the
    probe when the budget has rungs (with the geometry searcher's second opinion), FIFO otherwise."""

    def factory(config: SearchConfig, layer_space: LayerSpace, candidates: list[Candidate] | None):
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

        from raylayers.search.searcher import LayerSearcher

        budget = config.budget
        first = [c for c in _first_trials(config, layer_space, candidates)
                 if costs is None or not costs.is_left_out(c)]
        searcher = LayerSearcher(layer_space, config.space.hyperparameters, first,
                                 budget.prior_trials, config.space.prior_temperature,
                                 sampler=budget.searcher if budget.searcher in ("tpe", "geometry") else "random",
                                 seed=budget.seed, space_size=len(candidates) if candidates is not None else None,
                                 results_path=out / RESULTS_FILE, candidates=candidates,
                                 left_out=costs.is_left_out if costs is not None and costs.left_out else None,
                                 screen_step=budget.grace_period if screening(config) else None)
        asha = dict(time_attr="global_step", metric="score", mode="max", grace_period=budget.grace_period,
                    reduction_factor=budget.reduction_factor, max_t=10**9)
        if budget.grace_period <= 0:
            return searcher, FIFOScheduler()
        if screening(config):
            from raylayers.search.stopping import ScreenThenPromote

            def keep(trial_config: dict) -> bool:  # the baseline, as the summary finds it
                return config.space.baseline and layer_space.is_baseline(trial_config.get("layers", []),
                                                                         trial_config.get("connector"))

            return searcher, ScreenThenPromote(searcher, budget.grace_period, budget.reduction_factor, budget.screen,
                                               budget.concurrency, keep)
        if budget.searcher == "geometry":
            from raylayers.search.stopping import SecondOpinionASHA

            return searcher, SecondOpinionASHA(searcher, **asha)
        return searcher, ASHAScheduler(**asha)

    return factory


def _stopping_text(config: SearchConfig) -> str:
    budget = config.budget
    if screening(config):
        return (f", screening at step {budget.grace_period} (the best of {budget.screen} screens trained in full, "
                f"then one per {budget.reduction_factor} more)")
    return f", ASHA from step {budget.grace_period}" if budget.grace_period else ""


def screening(config: SearchConfig) -> bool:
    """Whether the search screens and promotes (`stopping.ScreenThenPromote`) instead of stopping at ASHA's rungs."""
    budget = config.budget
    return budget.searcher == "geometry" and budget.grace_period > 0 and budget.screen > 0


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


def _first_trials(config: SearchConfig, layer_space: LayerSpace, candidates: list[Candidate] | None
                  ) -> list[Candidate]:
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
