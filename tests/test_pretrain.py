import json

import pytest

from raylayers.errors import UserError
from raylayers.pretrain import PRESETS, config_with, pretrain_encoder
from raylayers.world import build_world


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    build_world(folder, seed=3, scale="tiny", progress=False)
    return folder


def test_pretraining_lowers_the_loss_and_reports_retrieval(tiny_world, tmp_path):
    config = config_with(PRESETS["tiny"], epochs=6)
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
    with pytest.raises(UserError, match="unknown pretrain setting.*bogus"):
        config_with(PRESETS["tiny"], bogus=1)


def test_a_step_budget_stops_there_and_does_not_depend_on_the_clock(tiny_world, tmp_path):
    """With max_steps the run ends at that step and its schedule follows steps alone: two runs give the same
    weights even though their clocks differ."""
    from safetensors.torch import load_file

    config = config_with(PRESETS["tiny"], epochs=6, max_steps=5)
    reports = [pretrain_encoder(tiny_world, tmp_path / name, config=config, progress=False, log=lambda _: None)
               for name in ("a", "b")]
    assert [r["steps"] for r in reports] == [5, 5] and not reports[0]["stopped_by_time_budget"]
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert all(a[key].equal(b[key]) for key in a)
