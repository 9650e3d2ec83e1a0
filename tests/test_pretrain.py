import json
import math

import pytest

from raylayers.config import PRESETS, pretrain_config
from raylayers.errors import UserError
from raylayers.pretrain import lr_schedule, pretrain_encoder
from raylayers.world import build_world


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    build_world(folder, seed=3, scale="tiny", progress=False)
    return folder


def test_pretraining_lowers_the_loss_and_reports_retrieval(tiny_world, tmp_path):
    config = pretrain_config("tiny", epochs=6)
    report = pretrain_encoder(tiny_world, tmp_path / "enc", config=config, progress=False, log=lambda _: None)
    curve = report["loss_curve"]
    assert report["steps"] == 6 * (48 // config.batch_size)
    assert sum(curve[-3:]) / 3 < sum(curve[:3]) / 3
    retrieval = report["retrieval"]
    assert retrieval["num_images"] == 16 and 0 < retrieval["chance"] <= 1
    assert json.loads((tmp_path / "enc" / "pretrain.json").read_text())["steps"] == report["steps"]
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json",
                 "lm/config.json", "lm/tokenizer.json"):
        assert (tmp_path / "enc" / name).is_file(), name


def test_unknown_setting_is_named():
    with pytest.raises(UserError, match="unknown key 'bogus' in pretrain settings"):
        pretrain_config("tiny", bogus=1)
    with pytest.raises(UserError, match="'epochs' in pretrain settings: input should be greater than 0"):
        pretrain_config("tiny", epochs=0)


def test_the_schedule_ignores_the_clock_only_under_a_step_budget():
    timed = lr_schedule(pretrain_config("demo", max_seconds=200.0), planned=920, total_steps=920)
    stepped = lr_schedule(pretrain_config("demo", max_steps=200), planned=920, total_steps=200)
    assert timed(100, 150.0) < timed(100, 1.0)  # a time budget decays with the clock
    assert stepped(100, 150.0) == stepped(100, 1.0) == stepped(100, 1e6)
    peak = PRESETS["demo"].learning_rate
    cosine = lambda step: 0.5 * (1 + math.cos(math.pi * step / 200))  # noqa: E731
    assert stepped(22, 0.0) == pytest.approx(peak * 23 / 46 * cosine(22))  # the planned 46-step warm-up, kept
    assert stepped(60, 0.0) == pytest.approx(peak * cosine(60))
    assert stepped(199, 0.0) < 1e-3 * stepped(100, 0.0)  # decayed to nearly nothing at the last step


def test_a_step_budget_stops_there_and_two_runs_give_the_same_weights(tiny_world, tmp_path):
    from safetensors.torch import load_file

    config = pretrain_config("tiny", epochs=6, max_steps=5)
    reports = [pretrain_encoder(tiny_world, tmp_path / name, config=config, progress=False, log=lambda _: None)
               for name in ("a", "b")]
    assert [r["steps"] for r in reports] == [5, 5] and not reports[0]["stopped_by_time_budget"]
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert all(a[key].equal(b[key]) for key in a)
