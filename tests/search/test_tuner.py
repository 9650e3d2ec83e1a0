"""The search on Ray Tune for real, with replay tables (fast) and with training (slow)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ray.tune.schedulers import HyperBandForBOHB

from raylayers import timings
from raylayers.cli import main
from raylayers.config import TrainConfig, load_config
from raylayers.errors import UserError
from raylayers.evaluate.run import evaluate_checkpoint
from raylayers.search.replay import single_layer_table, write_lrs, write_table
from raylayers.search.results import read_results
from raylayers.search.searcher import LayerSearcher
from raylayers.search.tuner import run_search


@pytest.fixture
def replay(tmp_path):
    """(space file writer, lrs path, table path) for a 6-layer encoder, single layers only."""
    lrs = write_lrs(tmp_path / "lrs" / "lrs.json")
    table = write_table(tmp_path / "table.parquet", single_layer_table())

    def space(name="space.yaml", **budget):
        budget = {"trials": 6, "grace_period": 0, **budget}
        text = (f"lrs: {{file: {lrs}}}\n"
                "space: {num_layers: [1], single_connectors: [mlp2x_gelu]}\n"
                f"budget: {json.dumps(budget)}\n")
        path = tmp_path / name
        path.write_text(text)
        return path

    return space, lrs, table


def rows_of(out):
    return read_results(out / "results.parquet")  # safe while the search rewrites it (the resume test polls)


@pytest.mark.slow
def test_replay_search_finds_the_best_and_never_trains_a_configuration_twice(replay, tmp_path, capfd):
    space, _, table = replay
    out = tmp_path / "out"
    summary = run_search(space(trials=10), out, objective=f"table:{table}")  # 10 trials, 6 configurations
    said = capfd.readouterr().out  # progress: each trial's start, its learning curve, its end
    assert "(1 of 10): layers [5] mlp2x_gelu started" in said and ": probe score 0.400" in said
    assert said.count("started") == 6 and "-> score 0.8000" in said
    assert "best_vs_baseline" not in summary  # a table objective has no per-question answers
    rows = rows_of(out)
    assert len(rows) == 6 and len({r["key"] for r in rows}) == 6 and len({r["trial_id"] for r in rows}) == 6
    assert all(r["status"] == "completed" for r in rows)
    assert summary["best"]["layers"] == [4] and summary["best"]["score"] == pytest.approx(0.8)
    assert summary["baseline"]["layers"] == [5]
    # the LRS priors came first: the penultimate layer 5 (also a representative), then representatives 1 and 4
    first = [r["layers"] for r in sorted(rows, key=lambda r: r["order"])[:3]]
    assert first == [[5], [1], [4]]
    best = load_config(TrainConfig, out / "best_config.yaml")
    assert best.model.layers == [4] and best.model.connector == "mlp2x_gelu"
    report = (out / "report.md").read_text()
    assert "figures/progress.png" in report and (out / "figures" / "lrs_chosen.png").is_file()
    assert list((out / "tensorboard").iterdir())


def test_the_summary_says_whether_the_best_beats_the_baseline_beyond_noise(replay, tmp_path, capsys):
    import pyarrow as pa

    from raylayers.cli import say_search_summary
    from raylayers.lrs import load_lrs
    from raylayers.search.results import write_results
    from raylayers.search.space import build_layer_space, load_search_config
    from raylayers.search.summary import finish

    space, lrs_path, _ = replay
    config = load_search_config(space())
    lrs = load_lrs(lrs_path)
    out = tmp_path / "out"
    rows = []
    for order, (trial_id, layer, score, correct) in enumerate((("base", 5, 0.5, [1.0, 0.0] * 60),
                                                                 ("best", 4, 0.9, [1.0] * 108 + [0.0] * 12))):
        rows.append({"trial_id": trial_id, "key": f"layers={layer}|connector=mlp2x_gelu", "layers": [layer],
                     "connector": "mlp2x_gelu", "hyperparameters": "{}", "status": "completed", "steps_trained": 40,
                     "wall_seconds": 1.0, "score": score, "probe_score": score, "error": None, "order": order,
                     "score_general": score, "image_reliance": 0.004})
        folder = out / "trials" / trial_id / "eval"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([{"benchmark": "count", "question_id": str(i), "category": "general",
                                              "correct": c} for i, c in enumerate(correct)]),
                       folder / "per_question.parquet")
    write_results(out / "results.parquet", rows)
    summary = finish(config, out, lrs, lrs_path, build_layer_space(config.space, lrs), 1.0)
    versus = summary["best_vs_baseline"]
    assert versus["difference"] == pytest.approx(0.4) and versus["low"] > 0.2 and versus["questions"] == 120
    say_search_summary(summary)
    said = capsys.readouterr().out
    assert "best minus baseline: +0.4000" in said and "a real difference" in said
    assert "Best minus baseline: +0.4000" in (out / "report.md").read_text()
    per_category = summary["per_category"]  # the weighted objective and the one category these rows score
    assert set(per_category) == {"weighted", "general"} and per_category["general"]["layers"] == [4]
    assert per_category["general"]["versus_baseline"]["difference"] == pytest.approx(0.4)
    assert "a real difference" in per_category["general"]["verdict"]
    assert "| general | 4 | mlp2x_gelu | 0.9000 | 0.5000 | +0.4000" in (out / "report.md").read_text()
    # both models barely use their images (probe image reliance 0.004 nats): the summary and report say so
    assert "caution: no trained model leans on its images yet" in said
    assert "**Caution:**" in (out / "report.md").read_text()
    from raylayers.search.report import caution

    assert caution({"image_reliance_max": 0.3}) is None and caution({}) is None
    assert (out / "figures" / "categories_by_layer.png").is_file()
    from raylayers.search.report import write_report

    bare = tmp_path / "bare"  # rows without per-category scores: no empty category figure
    bare.mkdir()
    write_report(bare, [{k: v for k, v in r.items() if k != "score_general"} for r in rows], lrs,
                 build_layer_space(config.space, lrs), summary)
    assert not (bare / "figures" / "categories_by_layer.png").exists()
    assert "categories_by_layer" not in (bare / "report.md").read_text()


@pytest.mark.slow
def test_asha_stops_weak_trials_and_records_them_as_pruned(replay, tmp_path):
    space, _, table = replay
    out = tmp_path / "out"
    summary = run_search(space(trials=6, grace_period=10, reduction_factor=2), out, objective=f"table:{table}")
    rows = rows_of(out)
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert pruned and summary["pruned"] == len(pruned)
    assert all(r["score"] is None and r["probe_score"] is not None and r["steps_trained"] < 40 for r in pruned)
    assert summary["best"]["layers"] == [4]


def test_a_configuration_missing_from_the_table_is_named(replay, tmp_path):
    space, _, table = replay
    rows = [r for r in pq.read_table(table).to_pylist() if r["layers"] != [6]]
    short = write_table(tmp_path / "short.parquet", rows)
    with pytest.raises(UserError, match="layers=6\\|connector=mlp2x_gelu is in the space but not in"):
        run_search(space(), tmp_path / "out", objective=f"table:{short}")


@pytest.mark.slow
def test_a_finished_search_is_not_overwritten(replay, tmp_path):
    space, _, table = replay
    run_search(space(trials=2), tmp_path / "out", objective=f"table:{table}")
    with pytest.raises(UserError, match="already holds a search; use --resume"):
        run_search(space(trials=2), tmp_path / "out", objective=f"table:{table}")


def test_searcher_tells_optuna_pruned_not_complete_and_answers_repeats(tmp_path):
    from optuna.trial import TrialState

    from raylayers.lrs import load_lrs
    from raylayers.search.searcher import LayerSearcher
    from raylayers.search.space import SpaceSection, build_layer_space

    space = build_layer_space(SpaceSection(num_layers=[1]), load_lrs(write_lrs(tmp_path / "lrs.json")))
    queue = [c for c in space.candidates() if c.layers in ((2,), (3,), (2,))]
    searcher = LayerSearcher(space, {}, queue + queue[:1], 0, 0.1, seed=0, space_size=6)
    first = searcher.suggest("t1")
    searcher.on_trial_result("t1", {"score": 0.9, "training_iteration": 1, "global_step": 10})
    searcher.on_trial_complete("t1", {"score": 0.9, "global_step": 10})  # stopped at a rung: no `final`
    second = searcher.suggest("t2")
    searcher.on_trial_complete("t2", {"score": 0.5, "global_step": 40, "final": True})
    states = [t.state for t in searcher._ot_study.trials]
    assert states[:2] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert first["layers"] == [2] and second["layers"] == [3]
    third = searcher.suggest("t3")  # never a configuration already measured
    assert third["layers"] not in ([2], [3])
    assert searcher.known[first["key"]] == ("pruned", 0.9) and searcher.known[second["key"]] == ("completed", 0.5)
    for trial in searcher._ot_study.trials[2:]:  # repeats TPE proposed were answered, not launched
        if trial.params.get("layer") == 2:
            assert trial.state == TrialState.PRUNED
        if trial.params.get("layer") == 3:
            assert trial.state == TrialState.COMPLETE and trial.value == 0.5
    for key in ("t4", "t5", "t6"):
        config = searcher.suggest(key)
        searcher.on_trial_complete(key, {"score": 0.1, "final": True, "global_step": 40})
        assert config["key"] not in {first["key"], second["key"], third["key"]}
    searcher.on_trial_complete("t3", {"score": 0.2, "final": True, "global_step": 40})
    assert searcher.suggest("t7") == "FINISHED"  # all 6 configurations measured: the search ends


@pytest.mark.slow
def test_killed_search_resumes_without_rerunning_a_finished_trial(replay, tmp_path):
    space, _, table = replay
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "raylayers.cli", "search", "--space", str(space(trials=6)), "--out", str(out),
            "--objective", f"table:{table}"]
    # each replayed trial takes ~1 s (it would take milliseconds), so the search is still running when it is stopped
    env = {**os.environ, "RAYLAYERS_PROGRESS": "0", "RAYLAYERS_REPLAY_STEP_SECONDS": "0.3"}
    driver = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        if len(rows_of(out)) >= 2:
            break
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    driver.wait()
    before = {r["trial_id"]: r for r in rows_of(out)}
    assert 2 <= len(before) < 6
    done = subprocess.run(argv + ["--resume"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = rows_of(out)
    assert len(rows) == 6 and len({r["trial_id"] for r in rows}) == 6 and len({r["key"] for r in rows}) == 6
    for trial_id, row in before.items():  # finished trials kept, not re-run
        again = next(r for r in rows if r["trial_id"] == trial_id)
        assert again["score"] == row["score"] and again["order"] == row["order"]
    assert json.loads((out / "search_summary.json").read_text())["completed"] == 6


@pytest.mark.slow
def test_sigterm_ends_a_search_with_143_and_one_line_and_the_resume_keeps_every_finished_trial(replay, tmp_path):
    """SIGTERM to the driver alone (as a scheduler or `kill` sends it): exit 143, one line with the trials recorded
    and the resume command, no Ray process left behind; `--resume` finishes the search without re-running any."""
    import psutil

    space, _, table = replay
    out = tmp_path / "out"
    argv = ["search", "--space", str(space(trials=6)), "--out", str(out), "--objective", f"table:{table}"]
    # each replayed trial takes ~1 s (it would take milliseconds), so the search is still running when it is stopped
    env = {**os.environ, "RAYLAYERS_PROGRESS": "0", "RAYLAYERS_REPLAY_STEP_SECONDS": "0.3"}
    driver = subprocess.Popen([sys.executable, "-m", "raylayers.cli", *argv], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(rows_of(out)) < 2:
        time.sleep(0.2)
    children = psutil.Process(driver.pid).children(recursive=True)
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 143, err[-3000:]
    before = {r["trial_id"]: r for r in rows_of(out)}
    last = err.strip().splitlines()[-1]
    assert last == (f"raylayers search: interrupted (SIGTERM); {len(before)} trial(s) recorded in "
                    f"{out / 'results.parquet'}; resume with: raylayers {' '.join(argv)} --resume"), err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, [p.cmdline()[:3] for p in alive]
    assert 2 <= len(before) < 6 and not (out / "search_summary.json").exists()  # not passed off as finished
    done = subprocess.run([sys.executable, "-m", "raylayers.cli", *argv, "--resume"], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = rows_of(out)
    assert len(rows) == 6 and len({r["key"] for r in rows}) == 6
    for trial_id, row in before.items():
        again = next(r for r in rows if r["trial_id"] == trial_id)
        assert again["score"] == row["score"] and again["order"] == row["order"]


def tiny_base(stack, path):
    world, encoder = stack / "world", stack / "encoder"
    path.write_text(f"""
model: {{encoder: {encoder}, lm: {encoder / 'lm'}, connector: mlp2x_gelu, layers: [-2]}}
data: {{stage1: {world / 'stage1.json'}, stage2: {world / 'stage2.json'}, val: {world / 'stage2_val.json'},
        max_length: 160, val_records: 8}}
stage1: {{learning_rate: 3.0e-3, max_steps: 2, global_batch_size: 8, micro_batch_size: 4, train_lm: true}}
stage2: {{learning_rate: 3.0e-3, max_steps: 3, global_batch_size: 8, micro_batch_size: 4, train_lm: true,
         template: chat}}
resources: {{num_workers: 1, cpus_per_worker: 1}}
checkpoint: {{every_steps: 100}}
probe_every_steps: 2
report_every_steps: 1
""")
    return path


def relative_space(stack, folder, learning_rates, budget, objective=""):
    """A space file in `folder` whose every path (and its base recipe's) is relative to `folder`, as a user writes
    them: a trial runs in a working directory of its own, so each must be resolved where the user started."""
    (folder / "stack").symlink_to(stack)
    tiny_base(Path("stack"), folder / "base.yaml")
    space = folder / "space.yaml"
    space.write_text(f"""
base: {{config: base.yaml, set: {{cache.dir: cache}}}}
lrs: {{file: lrs/lrs.json, images: stack/world/images, groups: "2", max_images: 32}}
space: {{num_layers: [1], layers: [-2], hyperparameters: {{stage2.learning_rate: {{choice: {learning_rates}}}}}}}
objective: {{bench: stack/world/bench, limit: 3{objective}}}
budget: {budget}
""")
    return space


@pytest.mark.slow
def test_training_search_retries_a_crashing_trial_then_records_it_failed(tiny_stack, tmp_path, monkeypatch, capfd):
    """Real trials (Ray Train + DeepSpeed, then evaluation) from a space with relative paths; the LRS is computed
    first from images. One learning rate diverges: that trial is retried once, recorded as failed with its error,
    and the search goes on, and ends with exit code 0 and a line saying how many failed. With a cost objective, the
    configuration's cost comes from the trained model's configs (one configuration: the baseline, ratio 1)."""
    monkeypatch.chdir(tmp_path)
    relative_space(tiny_stack, tmp_path, "[3.0e-3, 1.0e+30]", "{trials: 2, searcher: grid, retries: 1}",
                   objective=", cost: {measure: visual_tokens, penalty: 0.5}")
    assert main(["search", "--space", "space.yaml", "--out", "out"]) == 0
    out = tmp_path / "out"
    summary = json.loads((out / "search_summary.json").read_text())
    said = capfd.readouterr().out
    rows = {json.loads(r["hyperparameters"])["stage2.learning_rate"]: r for r in rows_of(out)}
    assert (tmp_path / "lrs" / "lrs.json").is_file()
    good, bad = rows[3.0e-3], rows[1.0e30]
    assert good["status"] == "completed" and 0.0 <= good["score"] <= 1.0 and good["steps_trained"] == 5
    assert good["score_vision_centric"] is not None and good["bench_count"] is not None
    assert good["visual_tokens"] > 0 and good["connector_params"] > 0
    assert good["cost_ratio"] == 1.0 and good["unpenalised_score"] == good["score"]
    assert summary["cost"]["measure"] == "visual_tokens" and summary["cost"]["baseline_key"] == good["key"]
    assert [(p["key"], p["cost"]) for p in summary["cost"]["front"]] == [(good["key"], good["visual_tokens"])]
    assert bad["status"] == "failed" and "NaN" in bad["error"] and bad["score"] is None
    attempts = (out / "trials" / bad["trial_id"] / "attempts.log").read_text().splitlines()
    assert len(attempts) == 2  # the first try and one retry
    assert summary["completed"] == 1 and summary["failed"] == 1
    assert f"1 of 2 trials failed; first error (trial {bad['trial_id']}): training stopped: the loss became " \
        "NaN/inf" in said
    assert f"trial {good['trial_id']}: layers {good['layers']} mlp2x_gelu stage2.learning_rate=0.003 -> score" in said
    assert (out / "trials" / good["trial_id"] / "tensorboard").is_dir()
    # the trained model was evaluated in the worker, in memory: the same answers as the saved model's, from disk
    trial = out / "trials" / good["trial_id"]
    trained = json.loads((trial / "train_summary.json").read_text())
    assert trained["evaluated"] == str(trial / "eval") and trained["zero_stage"] == 0  # ZeRO-2 on one rank
    # a worker failure is Tune's to retry (budget.retries), not Ray Train's: its restart raced with ASHA's stop
    assert load_config(TrainConfig, trial / "config.yaml").checkpoint.max_failures == 0
    in_memory = json.loads((trial / "eval" / "scores.json").read_text())
    from_disk = evaluate_checkpoint(trial / "model", str(tmp_path / "stack/world/bench"), tmp_path / "again",
                                    mode=in_memory["mode"], limit=3)
    assert from_disk["row"] == in_memory["row"]
    assert (tmp_path / "again" / "predictions.jsonl").read_text() == (trial / "eval" / "predictions.jsonl").read_text()
    spans = {span["span"] for span in timings.read(trial)}  # where the trial's time went, from every process
    assert {"trial process", "training checks", "worker process", "model build", "training steps", "probes",
            "evaluation forwards", "ray train fit", "trial"} <= spans
    # no early stopping (FIFO): the failing trial's first attempt ran in the good trial's Tune actor, the retry in
    # a fresh one (Tune does not reuse an actor whose trial failed)
    starts = sorted((s for t in (trial, out / "trials" / bad["trial_id"]) for s in timings.read(t)
                     if s["span"] == "trial process"), key=lambda s: s["start"])
    assert [s["reused"] for s in starts] == [0, 1, 0] and starts[0]["pid"] == starts[1]["pid"] != starts[2]["pid"]
    best = load_config(TrainConfig, out / "best_config.yaml")
    assert best.stage2.learning_rate == 3.0e-3 and best.data.stage1 == str(tmp_path / "stack/world/stage1.json")
    assert best.cache.dir == str(tmp_path / "cache") and list((tmp_path / "cache").iterdir())


@pytest.mark.slow
def test_a_search_whose_every_trial_fails_exits_non_zero_with_one_line(tiny_stack, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    relative_space(tiny_stack, tmp_path, "[1.0e+30]", "{trials: 1, searcher: grid, retries: 0}")
    assert main(["search", "--space", "space.yaml", "--out", "out"]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    rows = rows_of(tmp_path / "out")  # what the search wrote is kept
    assert len(rows) == 1 and rows[0]["status"] == "failed"
    assert last.startswith(f"raylayers search: error: 0 of 1 trials completed; first error (trial "
                           f"{rows[0]['trial_id']}): training stopped: the loss became NaN/inf"), last
    summary = json.loads((tmp_path / "out" / "search_summary.json").read_text())
    assert summary["completed"] == 0 and summary["first_error"]["trial_id"] == rows[0]["trial_id"]
    assert (tmp_path / "out" / "report.md").is_file() and not (tmp_path / "out" / "best_config.yaml").exists()


def test_searcher_state_round_trips_through_one_file(tmp_path):
    from raylayers.lrs import load_lrs
    from raylayers.search.searcher import LayerSearcher
    from raylayers.search.space import SpaceSection, build_layer_space

    space = build_layer_space(SpaceSection(num_layers=[1]), load_lrs(write_lrs(tmp_path / "lrs.json")))
    searcher = LayerSearcher(space, {}, [], 0, 0.1, seed=0, space_size=6)
    config = searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"score": 0.4, "final": True, "global_step": 1})
    searcher.save(str(tmp_path / "state.pkl"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lrs.json", "state.pkl"]  # no second file
    fresh = LayerSearcher(space, {}, [], 0, 0.1, seed=0, space_size=6)
    fresh.restore(str(tmp_path / "state.pkl"))
    assert fresh.known == {config["key"]: ("completed", 0.4)} and len(fresh._ot_study.trials) == 1


@pytest.mark.slow
def test_a_stopper_ends_the_search_at_its_target_and_the_target_trial_is_recorded(replay, tmp_path):
    from raylayers.search.tuner import StopAtScore

    space, _, table = replay
    out = tmp_path / "out"
    summary = run_search(space(trials=6), out, objective=f"table:{table}", stopper=StopAtScore(0.8))
    rows = sorted(rows_of(out), key=lambda r: r["order"])
    # the priors try 5, 1, then 4, which scores 0.8: the search stops there, with that trial completed and recorded
    assert [r["layers"] for r in rows] == [[5], [1], [4]]
    assert rows[-1]["status"] == "completed" and rows[-1]["score"] == pytest.approx(0.8)
    assert summary["best"]["layers"] == [4] and summary["trials"] == 3
    assert summary["searcher"]["configurations_known"] == 3


@pytest.mark.slow
def test_geometry_with_two_trials_at_once_proposes_no_configuration_twice_and_no_random_start(replay, tmp_path):
    """Concurrency 2 through real Tune on a replay table: every trial a different configuration, the first ones the
    queued priors (penultimate 5, representatives 1 and 4) and at most budget.prior_trials draws, then only the
    geometry model's proposals (no start-up trials from the sampler)."""
    space, _, table = replay
    out = tmp_path / "out"
    summary = run_search(space(trials=6, concurrency=2, searcher="geometry"), out, objective=f"table:{table}")
    rows = sorted(rows_of(out), key=lambda r: r["order"])
    assert len(rows) == 6 and len({r["key"] for r in rows}) == 6
    assert {tuple(r["layers"]) for r in rows[:2]} <= {(5,), (1,), (4,)}
    proposals = summary["searcher"]["proposals"]
    assert proposals["queued"] == 3 and proposals["prior"] <= 2 and proposals["sampler"] == 0
    assert sum(proposals.values()) == 6 and summary["searcher"]["repeats_answered"] == 0
    assert summary["best"]["layers"] == [4]


def test_each_category_gets_its_own_best_configuration_from_one_search(tmp_path):
    """The categories disagree: OCR is best at the deep layer, vision-centric at a middle one, the weighted objective
    at a fusion; without per-question answers (a table objective) the verdict says so instead of a number."""
    from raylayers.config.search import ObjectiveSection
    from raylayers.search.summary import recommend_per_category

    def row(trial_id, layers, score, ocr, vision):
        return {"trial_id": trial_id, "layers": layers, "connector": "concat" if len(layers) > 1 else "linear",
                "hyperparameters": "{}", "score": score, "score_ocr": ocr, "score_vision_centric": vision}

    rows = [row("base", [23], 0.30, 0.28, 0.25), row("mid", [16], 0.31, 0.22, 0.45), row("deep", [24], 0.29, 0.29, 0.2),
            row("fused", [5, 16, 23], 0.36, 0.27, 0.40)]
    recommended = recommend_per_category(tmp_path, rows, rows[3], rows[0], ObjectiveSection())
    assert {name: r["layers"] for name, r in recommended.items()} == {
        "weighted": [5, 16, 23], "ocr": [24], "vision_centric": [16]}
    assert recommended["vision_centric"]["baseline_score"] == 0.25 and recommended["vision_centric"]["score"] == 0.45
    assert recommended["ocr"]["verdict"] == "no per-question answers to compare (a table objective)"


class _PausableSearcher(LayerSearcher):
    """Ours in the space's order, with the two calls HyperBandForBOHB makes of a searcher (TuneBOHB's)."""

    def on_pause(self, trial_id):
        pass

    def on_unpause(self, trial_id):
        pass


class _RecordingHyperBand(HyperBandForBOHB):
    """Ray's HyperBandForBOHB, recording every (trial, step, decision) it makes."""

    seen: list = []

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, result)
        self.seen.append((trial.trial_id, result["global_step"], decision))
        return decision


@pytest.mark.slow
def test_a_replay_search_under_hyperband_resumes_paused_trials_from_their_checkpoints(replay, tmp_path):
    """`replay_checkpoints` (the search benchmark's BOHB runs on it): HyperBand pauses trials at its milestones and
    resumes them later; a resumed replay trial goes on from the step its checkpoint holds, so no step is reported
    twice and a completed trial's steps are its curve's, once."""
    space, _, table = replay

    def hyperband(config, layer_space, candidates):
        searcher = _PausableSearcher(layer_space, {}, list(candidates), 0, 1.0, sampler="random", seed=0,
                                     space_size=len(candidates), candidates=candidates)
        return searcher, _RecordingHyperBand(time_attr="global_step", metric="score", mode="max", max_t=40,
                                             reduction_factor=2)

    _RecordingHyperBand.seen = []
    out = tmp_path / "out"
    summary = run_search(space(trials=6), out, objective=f"table:{table}", search_factory=hyperband,
                         replay_checkpoints=True)
    rows = rows_of(out)
    assert len(rows) == 6 and {r["key"] for r in rows} == {f"layers={i}|connector=mlp2x_gelu" for i in range(1, 7)}
    assert summary["failed"] == 0 and summary["completed"] + summary["pruned"] == 6
    assert all(r["steps_trained"] == 40 for r in rows if r["status"] == "completed")
    seen = _RecordingHyperBand.seen
    assert any(decision == "PAUSE" for _, _, decision in seen), seen  # HyperBand did pause (and so resume) trials
    for trial in {trial for trial, _, _ in seen}:
        steps = [step for t, step, _ in seen if t == trial]
        assert steps == sorted(set(steps)), (trial, steps)  # each step once, in order: resumed, not restarted


@pytest.mark.slow
def test_geometry_screens_pauses_and_promotes_through_tune_resuming_each_trial_where_it_paused(replay, tmp_path):
    """The geometry searcher with early stopping screens (`ScreenThenPromote`): every trial pauses at the first rung
    (step 10), the best of the first three screens (layer 4) is resumed and trained in full before anything else,
    the paused ones left at the end are promoted (top half, and the baseline 5) or stopped at step 10. A resumed
    replay trial goes on from its checkpoint: no step reported twice."""
    space, _, table = replay
    out = tmp_path / "out"
    summary = run_search(space(trials=6, searcher="geometry", grace_period=10, reduction_factor=2, screen=3), out,
                         objective=f"table:{table}")
    rows = sorted(rows_of(out), key=lambda r: r["order"])
    assert len(rows) == 6 and len({r["key"] for r in rows}) == 6 and summary["paused"] == 0
    completed = [r for r in rows if r["status"] == "completed"]
    assert completed[0]["layers"] == [4] and completed[0]["steps_trained"] == 40
    assert all(r["steps_trained"] == 10 for r in rows if r["status"] == "pruned") and summary["pruned"] >= 1
    assert summary["baseline"]["layers"] == [5] and summary["best"]["layers"] == [4]
    for progress in (out / "tune").glob("*/*/result.json"):  # each trial's results, in the order Tune got them
        steps = [json.loads(line)["global_step"] for line in progress.read_text().splitlines()
                 if "global_step" in json.loads(line)]
        assert steps == sorted(set(steps)) and steps[0] == 10, (progress, steps)


@pytest.mark.slow
def test_screening_with_two_trials_at_once_proposes_no_configuration_twice(replay, tmp_path):
    space, _, table = replay
    out = tmp_path / "out"
    summary = run_search(space(trials=6, concurrency=2, searcher="geometry", grace_period=10, reduction_factor=2,
                               screen=2), out, objective=f"table:{table}")
    rows = rows_of(out)
    assert len(rows) == 6 and len({r["key"] for r in rows}) == 6 and summary["failed"] == 0
    assert summary["searcher"]["repeats_answered"] == 0 and summary["best"]["layers"] == [4]
    proposals = summary["searcher"]["proposals"]  # the queued priors, at most 2 prior draws, then only the model
    assert proposals["queued"] == 3 and proposals["prior"] <= 2 and proposals["sampler"] == 0


@pytest.mark.slow
def test_a_screened_training_trial_resumes_from_its_checkpoint_where_it_paused(tiny_stack, tmp_path, monkeypatch):
    """Real trials (Ray Train + DeepSpeed) under the geometry searcher's screening: each trial pauses at its probe at
    global step 4 (stage 1's 2 steps, then 2 of stage 2's 3, a checkpoint step); a promoted one is resumed and its
    Ray Train run goes on from its last checkpoint (Tune hears the probes at steps 2 and 4 once, then 5), is
    evaluated and completed with its 5 steps; one that is not ends pruned at step 4."""
    monkeypatch.chdir(tmp_path)
    relative_space(tiny_stack, tmp_path, "[3.0e-3, 1.0e-3]",
                   "{trials: 2, searcher: geometry, grace_period: 4, reduction_factor: 2, screen: 2}")
    space = tmp_path / "space.yaml"
    space.write_text(space.read_text().replace("set: {cache.dir: cache}",
                                               "set: {cache.dir: cache, checkpoint.every_steps: 2}"))
    assert main(["search", "--space", "space.yaml", "--out", "out"]) == 0
    out = tmp_path / "out"
    rows = rows_of(out)
    assert len(rows) == 2 and {r["status"] for r in rows} <= {"completed", "pruned"}
    done = [r for r in rows if r["status"] == "completed"]  # the second too when the two screens tie
    assert done and all(r["steps_trained"] == 4 for r in rows if r["status"] == "pruned")
    for row in done:
        assert row["steps_trained"] == 5 and 0.0 <= row["score"] <= 1.0
        progress = next(p for p in (out / "tune").glob("*/*/result.json") if row["trial_id"] in str(p))
        results = [json.loads(line) for line in progress.read_text().splitlines()]
        steps = [r["global_step"] for r in results if not r.get("final") and "global_step" in r]
        assert steps in ([2, 4, 5], [2, 4]), steps  # [2, 4]: the paused run had trained on to its end before it
        # was stopped (Tune stops a paused trial's actor asynchronously), so the resumed one had nothing to train


@pytest.mark.slow
def test_a_killed_screening_search_resumes_its_paused_trials_and_finishes(replay, tmp_path):
    """Killed while trials are paused at their screen: `--resume` restores them paused (a fresh scheduler learns
    their screen scores from their last results), promotes or stops them, and ends with no trial left paused and no
    configuration trained twice."""
    space, _, table = replay
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "raylayers.cli", "search", "--out", str(out), "--objective", f"table:{table}",
            "--space", str(space(trials=6, searcher="geometry", grace_period=10, reduction_factor=2, screen=3))]
    env = {**os.environ, "RAYLAYERS_PROGRESS": "0", "RAYLAYERS_REPLAY_STEP_SECONDS": "0.3"}
    driver = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and sum(r["status"] == "paused" for r in rows_of(out)) < 2:
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert sum(r["status"] == "paused" for r in rows_of(out)) >= 2
    done = subprocess.run(argv + ["--resume"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = rows_of(out)
    assert len({r["key"] for r in rows}) == len(rows) == 6
    assert {r["status"] for r in rows} <= {"completed", "pruned"}
    summary = json.loads((out / "search_summary.json").read_text())
    assert summary["paused"] == 0 and summary["best"]["layers"] == [4]
