"""The learning-rate shapes every loop uses (raylayers/train/schedule.py)."""

import math

import pytest

from raylayers.train.schedule import cosine_decay, linear_warmup, stage_schedule


def test_a_stage_warms_up_then_decays_with_a_cosine_to_zero():
    factor = stage_schedule(warmup_ratio=0.1, total_steps=100)  # 10 warm-up steps
    assert [factor(step) for step in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert factor(9) == pytest.approx(1.0) and factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert factor(100) == pytest.approx(0.0) and factor(1000) == pytest.approx(0.0)  # capped at the end
    assert stage_schedule(0.0, 5)(0) == pytest.approx(1.0)  # at least one warm-up step


def test_the_shapes():
    assert linear_warmup(0, 4) == 0.25 and linear_warmup(10, 4) == 1.0
    assert cosine_decay(0.0) == 1.0 and cosine_decay(1.0) == pytest.approx(0.0)
    assert cosine_decay(2.0) == cosine_decay(1.0)
