"""The METRICS registry: its names, the result every scorer returns on no rows, and the package's re-exports."""

from __future__ import annotations

import pytest

import raylayers.evaluate.metrics as metrics
from raylayers.evaluate.metrics import METRICS, benchmarks, choice, mme, ocr, pope, readers, vqa


def test_registry_names():
    assert set(METRICS) == {"mc_accuracy", "exact_match", "vqa_accuracy", "ocr_contains", "pope", "yes_no", "mme",
                            "gqa", "mmbench", "seed_bench", "scienceqa_img", "cv_bench", "realworldqa", "mmvp"}
    assert METRICS["yes_no"] is METRICS["pope"]


@pytest.mark.parametrize("name", sorted(METRICS))
def test_registry_empty_rows(name):
    result = METRICS[name]([])
    assert result["score"] == result["score_lenient"] == 0.0 and result["per_question"] == [] and result["n"] == 0


@pytest.mark.parametrize("name", sorted(METRICS))
def test_registry_rows_carry_both_rules(name):
    row = {"question_id": "q", "prediction": "B", "answer": "B", "options": ["x", "y"], "answers": ["B"] * 10,
           "subtask": "existence", "image": "a", "group": 0, "split": "random"}
    if name in ("pope", "yes_no", "mme"):
        row = {**row, "prediction": "no", "answer": "no"}
    result = METRICS[name]([row])
    assert set(result) >= {"score", "score_lenient", "n", "per_question"}
    assert set(result["per_question"][0]) == {"question_id", "parsed", "correct", "correct_lenient"}


@pytest.mark.parametrize("family", [vqa, choice, pope, ocr, mme, readers, benchmarks],
                         ids=lambda module: module.__name__)
def test_every_public_name_is_exported_by_the_package(family):
    public = {name for name, value in vars(family).items()
              if not name.startswith("_") and getattr(value, "__module__", family.__name__) == family.__name__
              and (callable(value) or name.isupper())}
    assert public <= set(metrics.__all__)
    assert all(getattr(metrics, name) is getattr(family, name) for name in public)
