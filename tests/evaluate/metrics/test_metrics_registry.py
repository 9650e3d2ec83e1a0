"""The METRICS registry: its names, the result every scorer returns on no rows, and the package's re-exports."""

from __future__ import annotations

import pytest

import raylayers.evaluate.metrics as metrics
from raylayers.evaluate.metrics import METRICS, choice, mme, ocr, pope, vqa


def test_registry_names():
    assert set(METRICS) == {"mc_accuracy", "exact_match", "vqa_accuracy", "ocr_contains", "pope", "yes_no", "mme"}
    assert METRICS["yes_no"] is METRICS["pope"]


@pytest.mark.parametrize("name", sorted(METRICS))
def test_registry_empty_rows(name):
    result = METRICS[name]([])
    assert result["score"] == 0.0 and result["per_question"] == [] and result["n"] == 0


@pytest.mark.parametrize("family", [vqa, choice, pope, ocr, mme], ids=lambda module: module.__name__)
def test_every_public_name_is_exported_by_the_package(family):
    public = {name for name, value in vars(family).items()
              if not name.startswith("_") and getattr(value, "__module__", family.__name__) == family.__name__
              and (callable(value) or name.isupper())}
    assert public <= set(metrics.__all__)
    assert all(getattr(metrics, name) is getattr(family, name) for name in public)
