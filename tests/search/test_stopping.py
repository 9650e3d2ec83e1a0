"""ASHA with a second opinion: a STOP is overruled for a trial that keeps pace with the best completed trial (the
real ASHAScheduler decides; the geometry searcher, driven by hand as Tune drives it, gives the second opinion; the
benchmark's replay tables show the effect on whole searches)."""

from types import SimpleNamespace

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from raylayers.config.search import SpaceSection
from raylayers.lrs import load_lrs
from raylayers.search.replay import PAPER_GROUPS, PAPER_NUM_LAYERS, paper_block_similarity, write_lrs
from raylayers.search.searcher import LayerSearcher
from raylayers.search.space import build_layer_space, seeded_candidates
from raylayers.search.stopping import SecondOpinionASHA


@pytest.fixture()
def searcher(tmp_path):
    lrs = load_lrs(write_lrs(tmp_path / "lrs.json", PAPER_GROUPS, PAPER_NUM_LAYERS, paper_block_similarity))
    space = build_layer_space(SpaceSection(num_layers=[1], single_connectors=["linear"]), lrs)
    candidates = space.candidates()
    return LayerSearcher(space, {}, seeded_candidates(space, True), 2, 0.1, sampler="geometry", seed=0,
                         space_size=len(candidates), candidates=candidates)


def run(searcher, trial_id: str, curve: dict[int, float], final: float | None) -> str:
    """A trial through the searcher: its intermediate scores, then completed (final) or stopped at its last step."""
    key = searcher.suggest(trial_id)["key"]
    for iteration, (step, score) in enumerate(curve.items(), start=1):
        searcher.on_trial_result(trial_id, {"score": score, "global_step": step, "training_iteration": iteration})
    last = max(curve)
    searcher.on_trial_complete(trial_id, {"score": final, "final": True} if final is not None
                               else {"score": curve[last], "global_step": last})
    return key


def test_a_trial_keeping_pace_with_the_best_completed_one_could_be_best(searcher):
    run(searcher, "t0", {1000: 0.10, 3000: 0.20}, final=0.30)  # the baseline
    assert not searcher.could_be_best(3000, 0.99)  # one completed trial: nothing beaten yet
    run(searcher, "t1", {1000: 0.12, 3000: 0.26}, final=0.36)  # the incumbent
    run(searcher, "t2", {1000: 0.05}, final=None)  # stopped at the first rung: not a completed curve
    assert searcher.could_be_best(3000, 0.26)  # the incumbent's own pace at 3000
    assert not searcher.could_be_best(3000, 0.25)  # behind it (though ahead of the baseline)
    assert searcher.could_be_best(1000, 0.12) and not searcher.could_be_best(1000, 0.11)
    assert not searcher.could_be_best(2000, 0.50)  # no completed trial passed step 2000


def feed(scheduler, trial_id: str, step: int, score: float) -> str:
    trial = SimpleNamespace(trial_id=trial_id)
    return scheduler.on_trial_result(None, trial, {"global_step": step, "score": score})


def test_second_opinion_overrules_only_the_stops_of_trials_keeping_pace(searcher):
    """At a rung where ASHA keeps the top third, two trials below the cutoff: the one matching the incumbent's
    score at that step goes on, the other is stopped; a plain ASHAScheduler stops both."""
    run(searcher, "t0", {1000: 0.10}, final=0.30)
    run(searcher, "t1", {1000: 0.12}, final=0.36)  # the incumbent: 0.12 at step 1000
    asha = dict(time_attr="global_step", metric="score", mode="max", grace_period=1000, reduction_factor=3,
                max_t=10**9)
    schedulers = {"second": SecondOpinionASHA(searcher, **asha), "plain": ASHAScheduler(**asha)}
    decisions = {}
    for name, scheduler in schedulers.items():
        for trial_id in ("a", "b", "c", "d", "e"):
            scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial_id))
        for trial_id, score in (("a", 0.14), ("b", 0.16), ("c", 0.20)):  # each the best so far: all go on
            assert feed(scheduler, trial_id, 1000, score) == TrialScheduler.CONTINUE
        decisions[name] = (feed(scheduler, "d", 1000, 0.12), feed(scheduler, "e", 1000, 0.11))
    assert decisions["plain"] == (TrialScheduler.STOP, TrialScheduler.STOP)
    assert decisions["second"] == (TrialScheduler.CONTINUE, TrialScheduler.STOP)
    assert schedulers["second"].overruled == 1


class FakeController:
    """What ScreenThenPromote reads of Tune's controller: the trials and whether the searcher has more to launch."""

    def __init__(self, trials, finished=False):
        self.trials, self.finished, self.stopped = trials, finished, []
        self.search_alg = SimpleNamespace(is_finished=lambda: self.finished)

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        self.stopped.append(trial.trial_id)
        trial.status = "TERMINATED"


def test_screens_pause_at_the_first_rung_then_the_best_is_promoted_one_per_reduction_factor(searcher):
    """screen 3, reduction factor 2: three trials pause at step 1000; the best is resumed (the others wait), then
    one more after every two further screens; at the end those at or above the median of all screens are promoted,
    the baseline always, and the rest are stopped. Paused trials do not count against the concurrency."""
    from raylayers.search.stopping import ScreenThenPromote

    searcher.screen_step = 1000
    scheduler = ScreenThenPromote(searcher, grace_period=1000, reduction_factor=2, screen=3, concurrency=1,
                                  keep=lambda config: config.get("key") == "base")
    trials = {}

    def screen(trial_id, score, key=None):
        searcher.suggest(trial_id)
        trial = trials[trial_id] = SimpleNamespace(trial_id=trial_id, status="RUNNING", config={"key": key})
        assert scheduler.on_trial_result(None, trial, {"global_step": 500, "score": score / 2}) == "CONTINUE"
        assert scheduler.on_trial_result(None, trial, {"global_step": 1000, "score": score}) == "PAUSE"
        trial.status = "PAUSED"
        assert trial_id in searcher.paused and searcher.observations()[searcher.pending[trial_id]] == score

    controller = FakeController(list(trials.values()))
    for trial_id, score in (("a", 0.10), ("b", 0.30), ("c", 0.20)):
        screen(trial_id, score, key="base" if trial_id == "a" else None)
        controller.trials = list(trials.values())
        if trial_id != "c":
            assert scheduler.choose_trial_to_run(controller) is None  # not due: nothing pending either
    assert scheduler.choose_trial_to_run(controller).trial_id == "b"  # due after 3 screens: the best
    assert "b" not in searcher.paused
    trials["b"].status = "RUNNING"
    assert scheduler.choose_trial_to_run(controller) is None  # one running: concurrency 1
    assert scheduler.on_trial_result(None, trials["b"], {"global_step": 3000, "score": 0.5}) == "CONTINUE"
    trials["b"].status = "TERMINATED"
    screen("d", 0.25)
    controller.trials = list(trials.values())
    assert scheduler.choose_trial_to_run(controller) is None  # 4 screens: the next is due at 3 + 2 x 1 = 5
    screen("e", 0.05)
    controller.trials = list(trials.values())
    assert scheduler.choose_trial_to_run(controller).trial_id == "d"  # due: the best paused one
    trials["d"].status = "TERMINATED"
    controller.finished = True  # nothing more to launch: the median of 5 screens (0.20) and the baseline go on
    assert scheduler.choose_trial_to_run(controller).trial_id == "c"
    assert sorted(controller.stopped) == ["e"] and scheduler.stopped == 1
    trials["c"].status = "TERMINATED"
    assert scheduler.choose_trial_to_run(controller).trial_id == "a"  # the baseline, below the bar but kept
