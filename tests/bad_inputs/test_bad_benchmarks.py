"""Bad predictions files and benchmark folders in `eval`: one line naming the file and line or column."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow.parquet as pq
import pytest


@pytest.fixture
def bench(tiny_stack, tmp_path):
    return shutil.copytree(tiny_stack / "world" / "bench" / "count", tmp_path / "count")


@pytest.fixture
def predictions(bench, tmp_path):
    rows = pq.read_table(bench / "questions.parquet").to_pylist()
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps({"question_id": r["question_id"], "prediction": "2"}) + "\n" for r in rows))
    return path


def score(predictions, bench, out):
    return ["eval", "--predictions", predictions, "--bench", bench, "--out", out]


@pytest.mark.parametrize("second_line, says", [
    (b'{"question_id": "q", "prediction": "caf\xe9"}', "not UTF-8 text"),
    (b'{"question_id": "q", "prediction": }', "predictions.jsonl:2: not valid JSON"),
    (b'{"question_id": "q"}', "predictions.jsonl:2: each line needs 'question_id' and 'prediction'"),
    (b'["q", "2"]', "predictions.jsonl:2: each line needs"),
])
def test_a_bad_predictions_line(refused, predictions, bench, tmp_path, second_line, says):
    lines = predictions.read_bytes().splitlines(keepends=True)
    predictions.write_bytes(lines[0] + second_line + b"\n" + b"".join(lines[1:]))
    refused(score(predictions, bench, tmp_path / "out"), says, "predictions.jsonl", nothing_new=True)


def test_an_empty_predictions_file(refused, bench, tmp_path):
    (tmp_path / "none.jsonl").write_text("\n\n")
    refused(score(tmp_path / "none.jsonl", bench, tmp_path / "out"), "none.jsonl", "no predictions")


def test_a_predictions_fifo_is_refused_not_blocked_on(refused, bench, tmp_path):
    os.mkfifo(tmp_path / "pipe.jsonl")
    refused(score(tmp_path / "pipe.jsonl", bench, tmp_path / "out"), "pipe.jsonl", "not a regular file")


@pytest.mark.parametrize("meta, says", [
    (b'{"metric": "caf\xe9"}', "not UTF-8 text"),
    (b'{"metric": ', "is not valid JSON"),
    (b'{"category": "general"}', "needs a 'metric' key"),
    (b'{"metric": "bleu"}', "unknown metric 'bleu'"),
    (b'{"metric": "exact_match", "category": "sports"}', "category 'sports' is not one of"),
])
def test_a_bad_meta_json(refused, predictions, bench, tmp_path, meta, says):
    (bench / "meta.json").write_bytes(meta)
    refused(score(predictions, bench, tmp_path / "out"), "meta.json", says, nothing_new=True)


def test_questions_missing_a_column(refused, predictions, bench, tmp_path):
    table = pq.read_table(bench / "questions.parquet")
    pq.write_table(table.drop(["answer"]), bench / "questions.parquet")
    refused(score(predictions, bench, tmp_path / "out"), "questions.parquet", "missing column(s) answer")


def test_questions_with_duplicated_ids(refused, predictions, bench, tmp_path):
    rows = pq.read_table(bench / "questions.parquet").to_pylist()
    rows[1]["question_id"] = rows[0]["question_id"]
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), bench / "questions.parquet")
    refused(score(predictions, bench, tmp_path / "out"), "duplicate question_id(s)", rows[0]["question_id"])


def test_questions_that_are_not_parquet(refused, predictions, bench, tmp_path):
    (bench / "questions.parquet").write_text("question_id,answer\n1,2\n")
    refused(score(predictions, bench, tmp_path / "out"), "questions.parquet", "not a readable parquet file")


def test_multiple_choice_rows_without_options_are_counted_and_reported(refused, tiny_stack, tmp_path):
    import pyarrow as pa

    source = next(p for p in sorted((tiny_stack / "world" / "bench").iterdir())
                  if json.loads((p / "meta.json").read_text())["metric"] == "mc_accuracy")
    bench = shutil.copytree(source, tmp_path / source.name)
    rows = pq.read_table(bench / "questions.parquet").to_pylist()
    for row in rows[:2]:
        row["options"] = []
    pq.write_table(pa.Table.from_pylist(rows), bench / "questions.parquet")
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"question_id": r["question_id"], "prediction": "A"})
                                              + "\n" for r in rows))
    refused(score(tmp_path / "p.jsonl", bench, tmp_path / "out"), "warning: multiple-choice question(s) without "
            "options", f"{bench.name}: 2 (e.g. {rows[0]['question_id']}", code=0)
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())["benchmarks"][bench.name]
    assert scores["num_no_options"] == 2 and scores["no_options"] == [rows[0]["question_id"], rows[1]["question_id"]]


def test_an_unknown_bench_name(refused, predictions, tmp_path, monkeypatch):
    monkeypatch.setenv("RAYLAYERS_WORLD", str(tmp_path / "no_world"))
    refused(score(predictions, "countt", tmp_path / "out"), "--bench 'countt'", "not a world task")
