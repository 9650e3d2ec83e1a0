"""The searcher: Ray Tune's `OptunaSearch` with LRS priors, no repeated configurations and honest pruning.

Two flaws of the stock Ray + Optuna combination are fixed here (ARCHITECTURE.md, "Ray: drivers and workers"):
- a trial stopped early by ASHA reaches `on_trial_complete` with its last intermediate score; stock OptunaSearch
  tells Optuna that partial score as a COMPLETE result. Here a trial is complete only when its last result carries
  `final: True` (the trial driver sets it after evaluation); otherwise Optuna hears PRUNED, and TPE ranks it by its
  intermediate values as Optuna's own pruning does;
- TPE happily proposes a configuration it has already seen. Here `suggest` answers a repeat from what was measured
  (the objective for a completed one, PRUNED/FAIL for the others), never launching a trial for it, and asks again;
  when every configuration of an enumerable space has been measured, the search ends.
The priors (seeded trials, then representative-like draws) go in through Optuna's `enqueue_trial`.

Samplers: `tpe` (Optuna's TPE, with `constant_liar` so that trials running at once are not proposed the same
region), `random`, and `geometry` (`raylayers.search.geometry`: a Gaussian process over layer points from the LRS;
its proposal also goes in through `enqueue_trial`, so Optuna's study records every trial either way; a space with a
continuous hyper-parameter is not enumerable, and there `geometry` falls back to TPE).
"""

from __future__ import annotations

import itertools
import pickle
import random
from pathlib import Path

import numpy as np
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from raylayers.search.space import Candidate, LayerSpace, prior_sample

MAX_REPEATS_PER_SUGGESTION = 200
COUNTERS_FILE = "searcher.json"


def define_configuration(trial, space: LayerSpace, hyperparameters: dict) -> dict:
    """Optuna define-by-run: a configuration of the space (the number of layers, then its groups and layers)."""
    n = trial.suggest_categorical("num_layers", space.num_layers)
    if n == 1:
        layers = (trial.suggest_categorical("layer", space.layers),)
        connector = trial.suggest_categorical("single_connector", space.single_connectors)
    else:
        if space.one_per_group:
            combos = ["+".join(names) for names in itertools.combinations(space.groups, n)]
            names = trial.suggest_categorical(f"groups_{n}", combos).split("+")
            layers = tuple(sorted(trial.suggest_categorical(f"layer_{g}", space.groups[g]) for g in names))
        else:
            sets = [",".join(map(str, s)) for s in space.layer_sets(n)]
            layers = tuple(int(x) for x in trial.suggest_categorical(f"layers_{n}", sets).split(","))
        connector = trial.suggest_categorical("fusion_connector", space.fusion_connectors)
    values = {}
    for key, spec in hyperparameters.items():
        kind, bounds = next(iter(spec.items()))
        if kind == "choice":
            values[key] = trial.suggest_categorical(key, bounds)
        else:
            values[key] = trial.suggest_float(key, bounds[0], bounds[1], log=kind == "log_uniform")
    return {"layers": list(layers), "connector": connector, "hyperparameters": values}


class LayerSearcher(OptunaSearch):
    """OptunaSearch over a `LayerSpace` (define-by-run, conditional on the number of layers and their groups)."""

    def __init__(self, layer_space: LayerSpace, hyperparameters: dict, queue: list[Candidate], prior_trials: int,
                 temperature: float, sampler: str = "tpe", seed: int = 0, known: dict | None = None,
                 space_size: int | None = None, results_path: str | Path | None = None,
                 candidates: list[Candidate] | None = None, left_out=None, screen_step: int | None = None):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" per search
        self.layer_space = layer_space
        self.hyperparameters = dict(hyperparameters)
        self.queue = list(queue)  # configurations to try first, in order
        self.prior_trials = prior_trials if sampler in ("tpe", "geometry") else 0
        self.temperature = temperature
        self.rng = random.Random(seed)
        self.known: dict[str, tuple[str, float | None]] = dict(known or {})  # key -> (status, score)
        self.pending: dict[str, str] = {}  # trial id -> key
        self.curves: dict[str, dict[int, float]] = {}  # key -> {step: intermediate score} (the geometry model's)
        self.space_size = space_size
        self.repeats_answered = 0
        # objective.cost.max_ratio: a predicate on configurations that cost too much; they are never launched, and
        # a proposal of one is told to Optuna as pruned (TPE learns to avoid them) and asked again
        self.left_out = left_out
        self.left_out_answered = 0
        self.allowed = list(candidates or [])
        # where each launched trial came from: the queue (seeded priors, or random/grid's order), a prior draw, the
        # geometry model, or the Optuna sampler itself (TPE's own proposals and its random start-up)
        self.proposals = {"queued": 0, "prior": 0, "model": 0, "sampler": 0}
        self._source = "sampler"
        self.results_path = str(results_path) if results_path else None
        self._results_seen = None
        self.model = None
        # screening (`stopping.ScreenThenPromote`): trials paused at `screen_step` still hold their configuration
        # but no worker; the searcher keeps the concurrency itself, counting only the trials that run
        self.screen_step = screen_step
        self.paused: set[str] = set()
        self.screens: dict[str, float] = {}  # key -> score at the screen step
        self.max_concurrent: int | None = None
        if sampler == "geometry" and candidates:
            from raylayers.search.geometry import ConfigurationGeometry, GeometryModel

            choices = {k: v["choice"] for k, v in self.hyperparameters.items() if "choice" in v}
            self.model = GeometryModel(ConfigurationGeometry(layer_space, choices), candidates)
        if sampler in ("tpe", "geometry"):
            # constant_liar: running trials count as bad results, so two trials at once are not drawn alike and the
            # start is not flooded with independent draws (Ray issue #52535)
            optuna_sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, len(queue)),
                                                        constant_liar=True)
        else:
            optuna_sampler = optuna.samplers.RandomSampler(seed=seed)
        super().__init__(space=self._define, metric="score", mode="max", sampler=optuna_sampler)

    # ---------------------------------------------------------------------------------------------- the space
    def _define(self, trial) -> dict:
        return define_configuration(trial, self.layer_space, self.hyperparameters)

    def params_of(self, candidate: Candidate) -> dict:
        """Optuna parameters that make `_define` return this configuration."""
        space = self.layer_space
        n = len(candidate.layers)
        params: dict = {"num_layers": n}
        if n == 1:
            params.update(layer=candidate.layers[0], single_connector=candidate.connector)
        else:
            if space.one_per_group:
                by_group = {space.group_of(layer): layer for layer in candidate.layers}
                names = [g for g in space.groups if g in by_group]
                params[f"groups_{n}"] = "+".join(names)
                params.update({f"layer_{g}": by_group[g] for g in names})
            else:
                params[f"layers_{n}"] = ",".join(map(str, candidate.layers))
            params["fusion_connector"] = candidate.connector
        params.update(dict(candidate.hyperparameters))
        return params

    @staticmethod
    def candidate_of(config: dict) -> Candidate:
        hyper = config.get("hyperparameters") or {}
        return Candidate(tuple(sorted(int(x) for x in config["layers"])), config["connector"],
                         tuple(sorted(hyper.items())))

    # ---------------------------------------------------------------------------------------------- Tune API
    def suggest(self, trial_id: str):
        from optuna.trial import TrialState

        self._sync_known()
        running = [t for t in self.pending if t not in self.paused]
        if self.max_concurrent is not None and len(running) >= self.max_concurrent:
            return None
        for _ in range(MAX_REPEATS_PER_SUGGESTION):
            if self.space_size is not None and len(set(self.known) | set(self.pending.values())) >= self.space_size:
                return None if running else Searcher.FINISHED  # every configuration measured or screened
            self._enqueue_next()
            config = super().suggest(trial_id)
            if config is None:
                return None
            candidate = self.candidate_of(config)
            key = candidate.key
            if self.left_out is not None and self.left_out(candidate):
                self._answer_left_out(trial_id)
                continue
            if key not in self.known and key not in self.pending.values():
                self.pending[trial_id] = key
                self.proposals[self._source] += 1
                return {**config, "key": key}
            # A repeat: answer it from what was measured, launch nothing, ask again.
            ot_trial = self._ot_trials.pop(trial_id)
            status, score = self.known.get(key, ("running", None))
            if status == "completed":
                self._ot_study.tell(ot_trial, score)
            elif status == "pruned":
                self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
            else:  # failed, or still running in another trial
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            self.repeats_answered += 1
            self._write_counters()
        return None  # only repeats for now (others still running): Tune asks again later

    def _answer_left_out(self, trial_id: str) -> None:
        """A proposal that costs more than objective.cost.max_ratio allows: pruned for Optuna, nothing launched;
        after a run of them, the next proposal is an unmeasured allowed configuration drawn at random."""
        from optuna.trial import TrialState

        self._ot_study.tell(self._ot_trials.pop(trial_id), state=TrialState.PRUNED)
        self.left_out_answered += 1
        if self.left_out_answered % 20 == 0 and self.allowed:
            taken = set(self.known) | set(self.pending.values())
            fresh = [c for c in self.allowed if c.key not in taken]
            if fresh:
                self.queue.insert(0, self.rng.choice(fresh))
        self._write_counters()

    def _sync_known(self) -> None:
        """Learn what the results table holds (after a resume the table can be ahead of the saved searcher)."""
        if not self.results_path or not Path(self.results_path).is_file():
            return
        stamp = Path(self.results_path).stat().st_mtime_ns
        if stamp == self._results_seen:
            return
        from raylayers.search.results import read_results

        for row in read_results(self.results_path):
            key, status = row.get("key"), row["status"]
            if not key or (key in self.known and self.known[key][0] != "paused"):
                continue
            if status == "paused":  # screened and waiting (after a resume, perhaps not in the restored `pending`)
                if key not in self.known and key not in self.pending.values():
                    self.known[key] = ("paused", row.get("probe_score"))
                if self.screen_step is not None and row.get("probe_score") is not None:
                    self.screens.setdefault(key, float(row["probe_score"]))
                continue
            self.known[key] = (status, row["score"] if status == "completed" else row.get("probe_score"))
        self._results_seen = stamp

    def _enqueue_next(self) -> None:
        self._source = "sampler"
        while self.queue:
            candidate = self.queue.pop(0)
            if candidate.key not in self.known and candidate.key not in self.pending.values():
                self._ot_study.enqueue_trial(self.params_of(candidate), skip_if_exists=False)
                self._source = "queued"
                return
        if self.prior_trials > 0:
            self.prior_trials -= 1
            for _ in range(50):
                candidate = prior_sample(self.layer_space, self.rng, self.temperature)
                if self.left_out is not None and self.left_out(candidate):
                    continue
                if candidate.key not in self.known and candidate.key not in self.pending.values():
                    params = self.params_of(candidate)
                    params = {k: v for k, v in params.items() if k not in self.hyperparameters}
                    self._ot_study.enqueue_trial(params, skip_if_exists=False)
                    self._source = "prior"
                    return
        if self.model is not None:
            candidate = self.model.propose(self.observations(), list(self.pending.values()),
                                           set(self.known) | set(self.pending.values()))
            if candidate is not None:
                self._ot_study.enqueue_trial(self.params_of(candidate), skip_if_exists=False)
                self._source = "model"

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Tune's ConcurrencyLimiter counts a paused trial as running; when screening, the searcher counts itself."""
        if self.screen_step is None:
            return False
        self.max_concurrent = max_concurrent
        return True

    def on_pause(self, trial_id: str) -> None:
        self.paused.add(trial_id)

    def record_screen(self, trial_id: str, score: float) -> None:
        """The scheduler paused this trial at the screen step with this score."""
        if trial_id in self.pending:
            self.screens[self.pending[trial_id]] = float(score)

    def on_unpause(self, trial_id: str) -> None:
        self.paused.discard(trial_id)

    def observations(self) -> dict[str, float]:
        """What the geometry model learns from; when screening, every configuration's score at the screen step
        (all were measured there, at one fidelity), see `_observations_at_rungs` otherwise."""
        if self.screen_step is not None:
            return {k: v for k, v in self.screens.items() if self.model is None or k in self.model.index}
        return self._observations_at_rungs()

    def _observations_at_rungs(self) -> dict[str, float]:
        """Without screening: completed scores, and each pruned configuration's last intermediate score extrapolated
        to a final one by the median ratio final / score-at-that-step of the completed trials that passed the same
        step (ASHA stopped it at a rung; its partial score is on another scale). A pruned one without such a ratio
        (or whose curve a resume lost) counts at the lowest completed score."""
        completed = self._completed()
        floor = min(completed.values(), default=None)
        observed = dict(completed)
        if floor is not None:
            for key, (status, _) in self.known.items():
                if status != "pruned":
                    continue
                curve = self.curves.get(key) or {}
                estimate = floor
                if curve:
                    step = max(curve)
                    ratios = [completed[k] / self.curves[k][step] for k in completed
                              if step in self.curves.get(k, {}) and self.curves[k][step] > 0]
                    if ratios:
                        estimate = float(np.median(ratios)) * curve[step]
                observed[key] = estimate
        return {k: v for k, v in observed.items() if self.model is None or k in self.model.index}

    def _completed(self) -> dict[str, float]:
        """The completed configurations' final scores, by key."""
        return {k: float(s) for k, (status, s) in self.known.items() if status == "completed" and s is not None}

    def could_be_best(self, step: int, score: float) -> bool:
        """Whether a trial scoring `score` at `step` keeps pace with the best completed trial: at or above what that
        trial scored at the same step (`SecondOpinionASHA` then keeps it running). False until two completed trials
        have passed `step` (the first is the baseline: nothing has been beaten yet)."""
        completed = self._completed()
        passed = [k for k in completed if self.curves.get(k, {}).get(step, 0) > 0]
        if len(passed) < 2:
            return False
        return score >= self.curves[max(passed, key=completed.get)][step]

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        key = self.pending.get(trial_id)
        if key is not None and result.get(self.metric) is not None and not result.get("final"):
            self.curves.setdefault(key, {})[int(result.get("global_step") or 0)] = float(result[self.metric])
        if self.metric in result and trial_id in self._ot_trials and not result.get("final"):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        from optuna.trial import TrialState

        key = self.pending.pop(trial_id, None)
        screened = trial_id in self.paused
        self.paused.discard(trial_id)
        if trial_id not in self._ot_trials or trial_id in self._completed_trials:
            return
        if screened and not result:  # a paused screen stopped for good: pruned at the screen step
            result = {self.metric: self.screens.get(key)}
        if error or not result:
            status, score = "failed", None
            super().on_trial_complete(trial_id, None, error=True)
        elif result.get("final"):
            status, score = "completed", result.get(self.metric)
            super().on_trial_complete(trial_id, result, error=False)
        else:  # stopped at a rung: its score is partial, so Optuna hears PRUNED, not COMPLETE
            status, score = "pruned", result.get(self.metric)
            self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
            self._completed_trials.add(trial_id)
        if key is not None:
            self.known[key] = (status, score)
        self._write_counters()

    # ---------------------------------------------------------------------------------------------- counters
    def counters(self) -> dict:
        """What the searcher did beyond launching trials (the search summary reports it)."""
        counters = {"repeats_answered": self.repeats_answered, "configurations_known": len(self.known),
                    "proposals": dict(self.proposals)}
        if self.left_out is not None:
            counters["left_out_answered"] = self.left_out_answered
        return counters

    def _write_counters(self) -> None:
        """Keep `searcher.json` beside the results table current: whichever instance runs (a resumed search restores
        its own), the summary reads the live counters from there."""
        if self.results_path:
            import json

            from raylayers.files import write_text_atomic

            write_text_atomic(Path(self.results_path).with_name(COUNTERS_FILE), json.dumps(self.counters()) + "\n")

    # ---------------------------------------------------------------------------------------------- state
    _OWN_STATE = ("queue", "prior_trials", "rng", "known", "pending", "repeats_answered", "curves", "proposals",
                  "left_out_answered", "paused", "screens")

    def save(self, checkpoint_path: str) -> None:
        """One file holding OptunaSearch's state and ours (Tune renames only the file it asked for)."""
        super().save(checkpoint_path)
        with open(checkpoint_path, "rb") as handle:
            optuna_state = handle.read()
        with open(checkpoint_path, "wb") as handle:
            pickle.dump({"optuna": optuna_state, "raylayers": {n: getattr(self, n) for n in self._OWN_STATE}}, handle)

    def restore(self, checkpoint_path: str) -> None:
        import tempfile

        with open(checkpoint_path, "rb") as handle:
            state = pickle.load(handle)
        if not (isinstance(state, dict) and "raylayers" in state):  # a plain OptunaSearch file
            super().restore(checkpoint_path)
            return
        with tempfile.NamedTemporaryFile(delete=False) as handle:
            handle.write(state["optuna"])
        try:
            super().restore(handle.name)
        finally:
            Path(handle.name).unlink(missing_ok=True)
        for name, value in state["raylayers"].items():
            setattr(self, name, value)
