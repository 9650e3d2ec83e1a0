"""Bad training inputs: data files and records, an --out that already holds a run, --resume, an encoder config, and
a run that diverges. Everything but the two slow cases fails before Ray starts."""

from __future__ import annotations

import json
import math

import pytest

from bad_inputs.bad_inputs_testing import record, snapshot, write_records
from raylayers.train.divergence import WINDOW, DivergenceGuard


def train(config, out, *extra):
    return ["train", "--config", config, "--out", out, *extra]


@pytest.mark.parametrize("content, says", [
    (b'[{"id": "caf\xe9"}]', "not UTF-8 text (byte 12)"),
    (b'[{"id": "r1",}]', "is not valid JSON: Expecting property name"),
    (b'{"id": "r1"}', "must hold a list of LLaVA records, found dict"),
    (b"[]", "holds no records"),
])
def test_a_data_file_that_cannot_be_read_as_records(refused, train_yaml, tmp_path, content, says):
    (tmp_path / "stage1.json").write_bytes(content)
    config = train_yaml(data={"stage1": str(tmp_path / "stage1.json")})
    refused(train(config, tmp_path / "out"), "stage1.json", says, nothing_new=True)


@pytest.mark.parametrize("broken, where, says", [
    (record("r7", image=["a.png", "b.png"]), "record r7 in", "'image' is a list of 2; one image per record"),
    (record("r7", image=3), "record r7 in", "'image' must be a path string, got int 3"),
    (record("r7", image=""), "record r7 in", "'image' is an empty string"),
    ({"id": "r7", "image": "a.png"}, "record r7 in", "'conversations' must be a list"),
    ({**record("r7"), "conversations": [{"from": "gpt", "value": "hi"}, {"from": "human", "value": "x"}]},
     "record r7 in", "turn 0 must be"),
    (record("r7", question="<image> and <image>"), "record r7 in", "2 '<image>' placeholders"),
    (record("r7", image=None), "record r7 in", "has '<image>' but no image"),
    ("just text", "record #1 in", "is not an object"),
])
def test_a_malformed_record_is_named(refused, train_yaml, tmp_path, broken, where, says):
    data = write_records(tmp_path / "stage2.json", [record("r0"), broken])
    refused(train(train_yaml(data={"stage2": str(data)}), tmp_path / "out"), where, "stage2.json", says,
            nothing_new=True)


def test_a_malformed_record_in_the_validation_file_is_named(refused, train_yaml, tmp_path):
    data = write_records(tmp_path / "val.json", [record("v0"), record("v1", image={"x": 1})])
    refused(train(train_yaml(data={"val": str(data)}), tmp_path / "out"), "record v1", "val.json", nothing_new=True)


def test_a_missing_data_file_names_its_key(refused, train_yaml, tmp_path):
    refused(train(train_yaml(data={"stage2": str(tmp_path / "gone.json")}), tmp_path / "out"), "data.stage2",
            "gone.json", "does not exist", nothing_new=True)


def finished_run(folder):
    """What a finished run leaves in its --out."""
    (folder / "model").mkdir(parents=True)
    (folder / "config.yaml").write_text("model: {connector: concat}\n")
    (folder / "model" / "raylayers_model.json").write_text("{}")
    (folder / "train_summary.json").write_text(json.dumps({"stages": {"stage1": {"steps": 5}}}))
    return folder


def test_train_into_an_out_that_holds_a_finished_run_is_refused_and_nothing_is_rewritten(refused, train_yaml,
                                                                                          tmp_path):
    out = finished_run(tmp_path / "out")
    refused(train(train_yaml(), out), "already holds a finished training run", kept=out, nothing_new=True)


def test_train_into_an_out_that_holds_an_unfinished_run_asks_for_resume(refused, train_yaml, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("model: {connector: concat}\n")
    refused(train(train_yaml(), out), "holds an unfinished training run; pass --resume", kept=out, nothing_new=True)


def test_resume_of_a_finished_run_is_refused(refused, train_yaml, tmp_path):
    out = finished_run(tmp_path / "out")
    refused(train(train_yaml(), out, "--resume"), "finished training run; nothing to resume", kept=out,
            nothing_new=True)


def test_resume_with_nothing_to_resume(refused, train_yaml, tmp_path):
    refused(train(train_yaml(), tmp_path / "out", "--resume"), "no training run to resume", nothing_new=True)


def test_resume_with_another_config_names_the_keys_that_differ(refused, train_yaml, tmp_path):
    import yaml

    from raylayers.config import TrainConfig, dump_yaml, load_config

    out = tmp_path / "out"
    out.mkdir()
    saved = load_config(TrainConfig, train_yaml(), ["model.layers=[3]"])  # as the driver saved it: layers resolved
    (out / "config.yaml").write_text(dump_yaml(saved))
    line = refused(train(train_yaml(), out, "--resume", "--set", "stage1.learning_rate=0.5", "--set", "seed=3"),
                   "cannot resume", "in seed, stage1.learning_rate;",
                   kept=out, nothing_new=True)
    assert "model.layers" not in line  # -2 resolves to 3 on the 4-layer encoder: the same layer
    assert yaml.safe_load((out / "config.yaml").read_text())["stage1"]["learning_rate"] == 1e-3


def test_a_ray_run_folder_with_checkpoints_under_the_storage_path_is_refused(refused, train_yaml, tmp_path):
    shared = tmp_path / "shared"
    (shared / "train" / "checkpoint_000001").mkdir(parents=True)
    config = train_yaml(resources={"storage_path": str(shared)})
    refused(train(config, tmp_path / "out"), "already holds Ray Train checkpoints of a run named 'train'",
            kept=shared)


def test_an_encoder_whose_depth_is_a_string(refused, train_yaml, tiny_stack, tmp_path):
    import shutil

    encoder = shutil.copytree(tiny_stack / "encoder", tmp_path / "encoder")
    config = json.loads((encoder / "config.json").read_text())
    config["vision_config"]["num_hidden_layers"] = "four"
    (encoder / "config.json").write_text(json.dumps(config))
    refused(train(train_yaml(model={"encoder": str(encoder)}), tmp_path / "out"), "encoder", "num_hidden_layers",
            "'four'", nothing_new=True)


# ================================================================================================ divergence
def steps(guard, losses, grad_norm=1.0):
    """Feed losses step by step; the first reason given and its step, or None."""
    for number, loss in enumerate(losses, 1):
        reason = guard.check({"loss": loss, "grad_norm": grad_norm, "step": number})
        if reason:
            return number, reason
    return None


def test_divergence_a_nan_loss_or_an_inf_gradient_norm_stops_at_once():
    assert steps(DivergenceGuard(100, 1), [5.0, math.nan]) == (2, "the loss became NaN/inf")
    step, reason = steps(DivergenceGuard(100, 1), [4.0, 4.1], grad_norm=math.inf)
    assert step == 1 and reason.startswith("the gradient norm became inf")
    assert steps(DivergenceGuard(100, 1, check_grad_norm=False), [4.0] * 5, grad_norm=math.inf) is None  # fp16


def test_divergence_a_loss_stuck_at_the_uniform_guess_after_warm_up():
    uniform = math.log(600)
    stuck = steps(DivergenceGuard(600, warmup_steps=5), [uniform + 0.01] * 40)
    assert stuck is not None and stuck[0] == 5 + WINDOW and "ln(600) = 6.397" in stuck[1]
    learning = [uniform + 0.1, uniform - 0.5] + [uniform - 1.0] * 40  # the demo's stage 1 leaves the band at once
    assert steps(DivergenceGuard(600, warmup_steps=1), learning) is None
    assert steps(DivergenceGuard(600, 1, check_plateau=False), [uniform] * 40) is None  # a frozen random LM
    back_and_forth = ([uniform] * (WINDOW - 1) + [uniform - 1.0]) * 3  # never WINDOW steps in a row
    assert steps(DivergenceGuard(600, warmup_steps=1), back_and_forth) is None


# ================================================================================================ with Ray
@pytest.mark.slow
def test_a_finished_run_is_not_passed_off_as_new_and_an_unfinished_one_resumes(train_yaml, tmp_path, capfd):
    from raylayers.cli import main

    config, out = train_yaml(stages=["stage1"], checkpoint={"every_steps": 1}), tmp_path / "out"
    assert main([str(part) for part in train(config, out)]) == 0
    finished = snapshot(out)
    capfd.readouterr()
    assert main([str(part) for part in train(config, out, "--set", "model.layers=[1]")]) == 2
    assert "already holds a finished training run" in capfd.readouterr().err
    assert snapshot(out) == finished  # config.yaml, train_summary.json, the model: as they were
    (out / "train_summary.json").unlink()  # as a run killed after its last checkpoint leaves it
    assert main([str(part) for part in train(config, out, "--resume", "--set", "seed=1")]) == 2
    assert "differs from its config.yaml in seed" in capfd.readouterr().err
    assert main([str(part) for part in train(config, out, "--resume")]) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["resumed_from"] == {"stage": "stage1", "step": 2, "global_step": 2}
    assert (out / "model" / "raylayers_model.json").read_bytes() == finished["model/raylayers_model.json"]


@pytest.mark.slow
def test_a_diverged_run_exits_non_zero_naming_the_step_and_the_last_good_checkpoint(train_yaml, tmp_path, capfd):
    from raylayers.cli import main

    config = train_yaml(stages=["stage1"], stage1={"learning_rate": 1.0e+6, "max_steps": 30, "train_lm": True},
                        checkpoint={"every_steps": 1, "max_failures": 0}, data={"val": None})
    capfd.readouterr()
    assert main([str(part) for part in train(config, tmp_path / "out")]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("raylayers train: error: training stopped: ") and " at stage1 step " in last, last
    assert "last good checkpoint: " in last
    assert not (tmp_path / "out" / "train_summary.json").exists()
