"""`raylayers eval`: hand-computed scores from crafted predictions, bad input, and real checkpoints on a world."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylayers.cli import main
from raylayers.errors import UserError
from raylayers.evaluate.bench import load_benchmark, resolve_benchmarks
from raylayers.evaluate.run import evaluate_checkpoint, format_scores, score_predictions_file


def write_bench(folder, rows, metric, category, answer_type="short", **extra_columns):
    folder.mkdir(parents=True)
    base = {"image": "img.png", "task": folder.name, "category": category, "options": []}
    table = pa.Table.from_pylist([{**base, **row} for row in rows])
    pq.write_table(table, folder / "questions.parquet")
    meta = {"task": folder.name, "category": category, "metric": metric, "answer_type": answer_type,
            "num_questions": len(rows), "description": "crafted"}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture
def crafted(tmp_path):
    bench = tmp_path / "bench"
    write_bench(bench / "mc", [
        {"question_id": "mc-1", "question": "Colour?", "answer": "B", "options": ["red", "blue"]},
        {"question_id": "mc-2", "question": "Shape?", "answer": "A", "options": ["circle", "square", "star"]},
        {"question_id": "mc-3", "question": "Size?", "answer": "A", "options": ["small", "large"]},
        {"question_id": "mc-4", "question": "Side?", "answer": "B", "options": ["left", "right"]},
    ], "mc_accuracy", "general", "multiple_choice")
    write_bench(bench / "count", [
        {"question_id": "count-1", "question": "How many?", "answer": "3"},
        {"question_id": "count-2", "question": "How many?", "answer": "0"},
    ], "exact_match", "vision_centric")
    write_bench(bench / "pope", [
        {"question_id": "pope-1", "question": "Is there a cat?", "answer": "yes", "split": "random"},
        {"question_id": "pope-2", "question": "Is there a dog?", "answer": "no", "split": "random"},
        {"question_id": "pope-3", "question": "Is there a car?", "answer": "yes", "split": "popular"},
        {"question_id": "pope-4", "question": "Is there a hat?", "answer": "no", "split": "popular"},
    ], "pope", "hallucination", "yes_no")
    write_bench(bench / "ocr", [
        {"question_id": "ocr-1", "question": "Text?", "answer": "frog"},
        {"question_id": "ocr-2", "question": "Text?", "answer": "302"},
    ], "ocr_contains", "ocr")
    write_bench(bench / "mme", [  # two images of one subtask, two questions each
        {"question_id": "mme-1", "question": "Is there a cat?", "answer": "yes", "subtask": "existence",
         "image_id": "a.png"},
        {"question_id": "mme-2", "question": "Is there a dog?", "answer": "no", "subtask": "existence",
         "image_id": "a.png"},
        {"question_id": "mme-3", "question": "Is there a car?", "answer": "yes", "subtask": "existence",
         "image_id": "b.png"},
        {"question_id": "mme-4", "question": "Is there a hat?", "answer": "no", "subtask": "existence",
         "image_id": "b.png"},
    ], "mme", "general", "yes_no")
    write_bench(bench / "vqa", [
        {"question_id": "vqa-1", "question": "What?", "answer": "2", "answers": ["2", "2", "2"] + ["3"] * 7},
    ], "vqa_accuracy", "general")
    predictions = [
        {"question_id": "mc-1", "prediction": "B"},  # right
        {"question_id": "mc-2", "prediction": "The answer is (A)."},  # right
        {"question_id": "mc-3", "prediction": "large"},  # option text: B, wrong
        {"question_id": "mc-4", "prediction": "B"},  # right, but answered twice: the first answer counts
        {"question_id": "mc-4", "prediction": "A"},
        {"question_id": "count-1", "prediction": "three"},  # number word: right
        # count-2 missing: wrong
        {"question_id": "pope-1", "prediction": "Yes, there is."},  # TP
        {"question_id": "pope-2", "prediction": "Yes"},  # FP
        {"question_id": "pope-3", "prediction": "No, there is not."},  # FN
        {"question_id": "pope-4", "prediction": "no"},  # TN
        {"question_id": "ocr-1", "prediction": "The text reads FROG"},  # contained: hit
        {"question_id": "ocr-2", "prediction": "30"},  # miss
        {"question_id": "vqa-1", "prediction": "two"},  # 3 of 10 humans: 0.9 under leave-one-out
        {"question_id": "mme-1", "prediction": "Yes"},  # image a: both right (acc+ counts it)
        {"question_id": "mme-2", "prediction": "No, there is none."},
        {"question_id": "mme-3", "prediction": "Yes."},  # image b: one of two right
        {"question_id": "mme-4", "prediction": "Yes"},
        {"question_id": "ghost-9", "prediction": "B"},  # unknown id
    ]
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in predictions))
    return bench, path


def test_predictions_reproduce_hand_computed_scores(crafted, tmp_path):
    bench, predictions = crafted
    scores = score_predictions_file(predictions, str(bench), tmp_path / "out")
    per = scores["benchmarks"]
    assert per["mc"]["score"] == pytest.approx(3 / 4)
    assert per["count"]["score"] == pytest.approx(1 / 2) and per["count"]["missing"] == 1
    assert per["pope"]["accuracy"] == pytest.approx(0.5)
    assert per["pope"]["precision"] == pytest.approx(0.5) and per["pope"]["recall"] == pytest.approx(0.5)
    assert per["pope"]["f1"] == pytest.approx(0.5) and per["pope"]["yes_ratio"] == pytest.approx(0.5)
    assert per["ocr"]["score"] == pytest.approx(0.5) and per["ocr"]["score_1000"] == 500
    assert per["vqa"]["score"] == pytest.approx(0.9)
    # MME existence: acc 3/4 = 75, acc+ 1/2 images = 50, score 125 of 200; perception 125
    assert per["mme"]["subtasks"]["existence"]["acc"] == pytest.approx(75.0)
    assert per["mme"]["subtasks"]["existence"]["acc_plus"] == pytest.approx(50.0)
    assert per["mme"]["perception"] == pytest.approx(125.0) and per["mme"]["score"] == pytest.approx(0.625)
    assert per["mc"]["duplicates"] == ["mc-4"]
    assert scores["unknown_ids"] == ["ghost-9"] and scores["num_missing"] == 1 and scores["num_duplicates"] == 1
    # categories: general = mean(mc 0.75, mme 0.625, vqa 0.9); overall = mean over the four categories
    general = (0.75 + 0.625 + 0.9) / 3
    assert scores["categories"]["general"] == pytest.approx(general)
    expected = (general + 0.5 + 0.5 + 0.5) / 4
    assert scores["overall"] == pytest.approx(expected) and scores["row"]["score"] == pytest.approx(expected)
    assert scores["row"]["score_vision_centric"] == pytest.approx(0.5) and "bench_pope" in scores["row"]
    table = pq.read_table(tmp_path / "out" / "per_question.parquet").to_pylist()
    assert len(table) == 17
    mc3 = next(r for r in table if r["question_id"] == "mc-3")
    assert mc3["parsed"] == "B" and mc3["correct"] == 0.0
    assert json.loads((tmp_path / "out" / "scores.json").read_text())["overall"] == pytest.approx(expected)
    # the offline-world metrics have one rule: both figures agree, and so do the means under both
    assert all(b["score_lenient"] == b["score"] for b in per.values())
    assert scores["objective_metric"] == "official"
    assert scores["by_metric"]["lenient"]["overall"] == pytest.approx(expected) == scores["by_metric"]["official"][
        "overall"]
    assert all(r["correct_lenient"] == r["correct"] for r in table)


def test_the_objective_metric_picks_official_or_lenient_scores(tmp_path):
    bench = write_bench(tmp_path / "bench" / "seed", [
        {"question_id": "s-1", "question": "Colour?", "answer": "B", "options": ["red", "blue"]},
        {"question_id": "s-2", "question": "Shape?", "answer": "A", "options": ["circle", "square"]},
    ], "seed_bench", "general", "multiple_choice")
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"question_id": "s-1", "prediction": "B"}) + "\n"
                           + json.dumps({"question_id": "s-2", "prediction": "(A) circle"}) + "\n")
    # SEED reads the first character: "(" is wrong officially; the lenient reader reads A
    official = score_predictions_file(predictions, str(bench), tmp_path / "o1")
    seed = official["benchmarks"]["seed"]
    assert seed["score"] == 0.5 and seed["score_lenient"] == 1.0
    assert official["overall"] == 0.5 and official["row"]["bench_seed"] == 0.5
    assert official["by_metric"]["lenient"]["categories"]["general"] == 1.0
    lenient = score_predictions_file(predictions, str(bench), tmp_path / "o2", metric="lenient")
    assert lenient["objective_metric"] == "lenient" and lenient["overall"] == 1.0
    assert lenient["row"]["score_general"] == 1.0 and lenient["row"]["bench_seed"] == 1.0
    table = pq.read_table(tmp_path / "o1" / "per_question.parquet").to_pylist()
    assert [(r["correct"], r["correct_lenient"]) for r in table] == [(1.0, 1.0), (0.0, 1.0)]
    with pytest.raises(UserError, match="unknown objective metric 'best'"):
        score_predictions_file(predictions, str(bench), tmp_path / "o3", metric="best")
    assert "lenient" in format_scores(official) and "overall (official)" in format_scores(official)


def test_a_folder_imported_with_a_generic_metric_gets_its_benchmarks_rule(tmp_path):
    folder = write_bench(tmp_path / "seed", [{"question_id": "1", "question": "q", "answer": "A",
                                              "options": ["x", "y"]}], "mc_accuracy", "general", "multiple_choice")
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "layout": "seed_bench"}))
    assert load_benchmark(folder).metric == "seed_bench"
    (folder / "meta.json").write_text(json.dumps(meta))  # no layout: the world's generic metric stays
    assert load_benchmark(folder).metric == "mc_accuracy"


def test_search_objective_metric_option():
    from raylayers.config.base import validate
    from raylayers.config.search import ObjectiveSection, SearchConfig

    assert ObjectiveSection().metric == "official"
    assert validate(SearchConfig, {"objective": {"metric": "lenient"}}).objective.metric == "lenient"
    with pytest.raises(UserError, match="objective.metric"):
        validate(SearchConfig, {"objective": {"metric": "best"}})


def test_cli_eval_predictions_prints_a_table_and_warns_about_bad_ids(crafted, tmp_path, capsys):
    bench, predictions = crafted
    assert main(["eval", "--predictions", str(predictions), "--bench", str(bench), "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert "overall" in captured.out and "scores written to" in captured.out
    assert "1 unknown id(s)" in captured.err and "1 missing id(s)" in captured.err


def test_bad_benchmarks_and_predictions_are_one_line_errors(crafted, tmp_path, capsys):
    bench, predictions = crafted
    broken = tmp_path / "broken"
    broken.mkdir()
    pq.write_table(pa.Table.from_pylist([{"question_id": "1", "question": "q"}]), broken / "questions.parquet")
    (broken / "meta.json").write_text(json.dumps({"metric": "exact_match", "category": "general"}))
    with pytest.raises(UserError, match="missing column\\(s\\) image, answer, task, category"):
        load_benchmark(broken)
    empty = tmp_path / "empty"
    write_bench(empty, [{"question_id": "x", "question": "q", "answer": "a"}], "exact_match", "general")
    pq.write_table(pq.read_table(empty / "questions.parquet").slice(0, 0), empty / "questions.parquet")
    with pytest.raises(UserError, match="empty"):
        load_benchmark(empty)
    bad_lines = tmp_path / "bad.jsonl"
    bad_lines.write_text('{"question_id": "mc-1", "prediction": "B"}\n{oops\n')
    assert main(["eval", "--predictions", str(bad_lines), "--bench", str(bench), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2: not valid JSON" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--predictions", str(predictions), "--bench", "nosuchtask", "--out", str(tmp_path)]) == 2
    assert "not a world task" in capsys.readouterr().err


def test_world_names_resolve(tiny_stack, monkeypatch):
    monkeypatch.setenv("RAYLAYERS_WORLD", str(tiny_stack / "world"))
    assert [p.name for p in resolve_benchmarks("count,pope")] == ["count", "pope"]
    assert len(resolve_benchmarks("world")) == len(resolve_benchmarks(str(tiny_stack / "world")))


def test_checkpoint_greedy_and_likelihood_on_the_world(tiny_stack, tiny_checkpoint, tmp_path):
    world = tiny_stack / "world"
    greedy = evaluate_checkpoint(tiny_checkpoint, str(world), tmp_path / "greedy", mode="greedy", limit=6)
    assert set(greedy["categories"]) == {"general", "ocr", "vision_centric", "hallucination"}
    assert 0.0 <= greedy["overall"] <= 1.0
    lines = (tmp_path / "greedy" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == sum(s["n"] for s in greedy["benchmarks"].values())
    evaluate_checkpoint(tiny_checkpoint, str(world), tmp_path / "likely", mode="likelihood", limit=6)
    table = pq.read_table(tmp_path / "likely" / "per_question.parquet").to_pylist()
    mc = [r for r in table if r["benchmark"] in ("attributes", "position", "relation", "localize")]
    assert mc and all(r["prediction"] in "ABCD" and r["prediction"] for r in mc)  # always one of the options
    assert all(r["prediction"] in ("yes", "no") for r in table if r["benchmark"] == "pope")


def test_batched_greedy_matches_one_by_one(tiny_stack, tiny_checkpoint):
    from raylayers.evaluate.predict import Predictor

    bench = load_benchmark(tiny_stack / "world" / "bench" / "count", limit=5)
    sources = [bench.image_source(r) for r in bench.rows]
    batched = Predictor(tiny_checkpoint, batch_size=5).predict(bench.rows, sources, "short")
    single = Predictor(tiny_checkpoint, batch_size=1).predict(bench.rows, sources, "short")
    assert [r["prediction"] for r in batched] == [r["prediction"] for r in single]


def test_missing_images_count_as_errors_not_crashes(tiny_stack, tiny_checkpoint, tmp_path):
    source = tiny_stack / "world" / "bench" / "count"
    rows = pq.read_table(source / "questions.parquet").slice(0, 3).to_pylist()
    rows[1]["image"] = "images/nope.png"
    folder = tmp_path / "count"
    folder.mkdir()
    (folder / "images").symlink_to(source / "images")
    pq.write_table(pa.Table.from_pylist(rows), folder / "questions.parquet")
    (folder / "meta.json").write_text((source / "meta.json").read_text())
    scores = evaluate_checkpoint(tiny_checkpoint, str(folder), tmp_path / "out")
    assert scores["benchmarks"]["count"]["errors"] == {"image missing": 1}


@pytest.mark.slow
def test_ray_sharded_eval_merges_in_question_order(tiny_stack, tiny_checkpoint, tmp_path):
    bench = str(tiny_stack / "world" / "bench" / "count")
    one = evaluate_checkpoint(tiny_checkpoint, bench, tmp_path / "one", limit=9)
    two = evaluate_checkpoint(tiny_checkpoint, bench, tmp_path / "two", workers=2, limit=9)
    assert (tmp_path / "one" / "predictions.jsonl").read_text() == (tmp_path / "two" / "predictions.jsonl").read_text()
    assert one["overall"] == two["overall"]


def test_lmms_eval_bridge_logic_without_lmms_eval(tiny_stack, tiny_checkpoint):
    from PIL import Image

    from raylayers.evaluate.lmms_eval_bridge import (
        answer_contexts,
        continuation_logprob,
        register,
    )
    from raylayers.evaluate.predict import Predictor

    predictor = Predictor(tiny_checkpoint, batch_size=2)
    image = Image.open(next((tiny_stack / "world" / "bench" / "count" / "images").iterdir()))
    answers = answer_contexts(predictor, ["How many circles are there?", "What shape?"], [image, image], 4)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    total, greedy = continuation_logprob(predictor, "Is there a circle?", "yes", image)
    assert total < 0 and isinstance(greedy, bool)
    try:
        import lmms_eval  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install lmms-eval"):
            register()


def test_compare_plots_runs_per_layer(tmp_path, capsys):
    runs = []
    for layer, (general, ocr) in {3: (0.6, 0.1), 9: (0.5, 0.3), 11: (0.4, 0.35)}.items():
        checkpoint = tmp_path / f"ckpt{layer}"
        checkpoint.mkdir()
        (checkpoint / "raylayers_model.json").write_text(json.dumps({"vision_layers": [layer]}))
        run = tmp_path / f"eval{layer}"
        run.mkdir()
        (run / "scores.json").write_text(json.dumps({
            "checkpoint": str(checkpoint), "categories": {"general": general, "ocr": ocr},
            "benchmarks": {"attributes": {"score": general}, "ocr": {"score": ocr}}}))
        runs.append(str(run))
    from raylayers.evaluate.compare import main as compare

    assert compare(["--runs", *runs, "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "benchmarks_by_run.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "categories_by_layer.png").stat().st_size > 1000
    assert compare(["--runs", runs[0], "--out", str(tmp_path / "x")]) == 2
    assert "at least two" in capsys.readouterr().err


def talkative_checkpoint(tiny_checkpoint, folder):
    """The untrained checkpoint with the special tokens' (tied) embedding rows zeroed: a random LM whose greedy
    answers are never empty, so they vary with the image and the question, and any padding mistake shows."""
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    shutil.copytree(tiny_checkpoint, folder)
    weights_file = next((folder / "model" / "lm").glob("*.safetensors"))
    weights = load_file(weights_file)
    tokenizer = AutoTokenizer.from_pretrained(folder / "model" / "tokenizer")
    for name, tensor in weights.items():
        if name.endswith("embed_tokens.weight") or name.endswith("lm_head.weight"):
            tensor[tokenizer.all_special_ids] = 0.0
    save_file(weights, weights_file, metadata={"format": "pt"})
    return folder


def test_greedy_answers_do_not_depend_on_the_batch_size_on_the_whole_offline_suite(tiny_stack, tiny_checkpoint,
                                                                                   tmp_path):
    """lmms-eval users see scores move with the batch size (lmms-eval #236): here batch 1 and the default batch
    (left-padded prompts of different lengths, the KV cache) give the same answers to every world question."""
    world = str(tiny_stack / "world")
    checkpoint = talkative_checkpoint(tiny_checkpoint, tmp_path / "talkative")
    answers = {}
    for batch_size in (1, 16):
        evaluate_checkpoint(checkpoint, world, tmp_path / f"b{batch_size}", mode="greedy", batch_size=batch_size)
        answers[batch_size] = (tmp_path / f"b{batch_size}" / "predictions.jsonl").read_text().splitlines()
    assert len(answers[1]) > 70 and answers[1] == answers[16]
    assert len({json.loads(line)["prediction"] for line in answers[1]}) >= 5  # answers that vary, so could differ
