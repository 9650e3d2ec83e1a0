"""The paired bootstrap of two evaluations: point difference, interval, verdict."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylayers.errors import UserError
from raylayers.evaluate.significance import describe, paired_bootstrap


def per_question(path, correct: dict[str, list[float]], categories=None):
    """A per_question.parquet: benchmark -> the correct column, in question order."""
    categories = categories or {}
    rows = [{"benchmark": bench, "question_id": f"{bench}-{i}", "category": categories.get(bench, "general"),
             "correct": value} for bench, values in correct.items() for i, value in enumerate(values)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_identical_answers_differ_by_exactly_nothing(tmp_path):
    a = per_question(tmp_path / "a.parquet", {"count": [1, 0, 1, 1, 0], "pope": [0, 1, 1]})
    result = paired_bootstrap(a, a)
    assert result["difference"] == 0 and result["low"] == 0 and result["high"] == 0
    assert result["questions"] == 8 and result["benchmarks"] == 2
    assert "within noise" in describe(result)


def test_a_clearly_better_model_is_a_real_difference(tmp_path):
    a = per_question(tmp_path / "a.parquet", {"count": [1.0] * 150 + [0.0] * 50})
    b = per_question(tmp_path / "b.parquet", {"count": [0.0] * 150 + [1.0] * 50})
    result = paired_bootstrap(a, b, resamples=500)
    assert result["difference"] == pytest.approx(0.5)
    assert 0.3 < result["low"] < 0.5 < result["high"] < 0.7 and result["p_better"] == 1.0
    assert "a real difference" in describe(result)
    swapped = paired_bootstrap(b, a, resamples=500)
    assert swapped["difference"] == pytest.approx(-0.5) and swapped["high"] < 0


def test_a_few_questions_do_not_separate_close_models(tmp_path):
    a = per_question(tmp_path / "a.parquet", {"count": [1, 0, 1, 0, 1, 0, 1, 1]})
    b = per_question(tmp_path / "b.parquet", {"count": [1, 0, 1, 0, 1, 0, 1, 0]})
    result = paired_bootstrap(a, b)
    assert result["difference"] == pytest.approx(1 / 8) and result["low"] <= 0 < result["high"]


def test_the_score_is_weighted_over_category_means_of_benchmark_means(tmp_path):
    # A beats B by 1.0 on the OCR benchmark only; general has two benchmarks with no difference
    categories = {"ocr": "ocr", "count": "general", "pope": "general"}
    a = per_question(tmp_path / "a.parquet", {"ocr": [1, 1], "count": [1, 0, 1], "pope": [0, 1]}, categories)
    b = per_question(tmp_path / "b.parquet", {"ocr": [0, 0], "count": [1, 0, 1], "pope": [0, 1]}, categories)
    assert paired_bootstrap(a, b)["difference"] == pytest.approx(0.5)  # (1.0 + 0.0) / 2 categories
    assert paired_bootstrap(a, b, weights={"ocr": 3.0})["difference"] == pytest.approx(0.75)


def test_only_shared_questions_count_and_none_shared_is_an_error(tmp_path):
    a = per_question(tmp_path / "a.parquet", {"count": [1, 1, 1, 1]})
    b = per_question(tmp_path / "b.parquet", {"count": [0, 0]})
    assert paired_bootstrap(a, b)["questions"] == 2
    c = per_question(tmp_path / "c.parquet", {"pope": [1]})
    with pytest.raises(UserError, match="share no question"):
        paired_bootstrap(a, c)
    with pytest.raises(UserError, match="missing.parquet' does not exist"):
        paired_bootstrap(a, tmp_path / "missing.parquet")


def test_the_lenient_column_is_resampled_when_asked(tmp_path):
    rows = [{"benchmark": "seed", "question_id": "1", "category": "general", "correct": 0.0, "correct_lenient": 1.0}]
    a = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(rows), a)
    b = per_question(tmp_path / "b.parquet", {"seed": [0.0]})  # written before correct_lenient: `correct` stands in
    b_rows = pq.read_table(b).to_pylist()
    pq.write_table(pa.Table.from_pylist([{**r, "question_id": "1"} for r in b_rows]), b)
    assert paired_bootstrap(a, b)["difference"] == 0.0
    assert paired_bootstrap(a, b, column="correct_lenient")["difference"] == 1.0
