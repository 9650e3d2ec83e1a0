"""`raylayers train` for real: Ray Train workers, DeepSpeed ZeRO on the CPU accelerator (gloo), tiny world."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from raylayers.config import TrainConfig, load_config
from raylayers.connectors import CONNECTORS
from raylayers.errors import UserError
from raylayers.train import check_before_launch, deepspeed_config, run_training

pytestmark = pytest.mark.slow


def tiny_config(stack, *overrides):
    world, encoder = stack / "world", stack / "encoder"
    data = {
        "model": {"encoder": str(encoder), "lm": str(encoder / "lm"), "connector": "mlp2x_gelu", "layers": [-2]},
        "data": {"stage1": str(world / "stage1.json"), "stage2": str(world / "stage2.json"),
                 "val": str(world / "stage2_val.json"), "max_length": 160, "val_records": 8},
        "stage1": {"learning_rate": 3e-3, "epochs": 2, "global_batch_size": 8, "micro_batch_size": 4},
        "stage2": {"learning_rate": 3e-3, "epochs": 2, "global_batch_size": 8, "micro_batch_size": 4,
                   "train_lm": True, "template": "chat"},
        "resources": {"num_workers": 1},
        "checkpoint": {"every_steps": 100},
        "probe_every_steps": 0,
    }
    return load_config(TrainConfig, data=data, overrides=list(overrides))


def scalars(out, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


def test_two_workers_zero2_both_stages(tiny_stack, tmp_path):
    config = tiny_config(tiny_stack, "resources.num_workers=2", "deepspeed.zero_stage=2",
                         "cache.dir=" + str(tmp_path / "cache"))
    summary = run_training(config, tmp_path / "run")
    assert set(summary["stages"]) == {"stage1", "stage2"}
    for stage in ("stage1", "stage2"):
        curve = scalars(tmp_path / "run", f"{stage}/loss")
        assert curve[-1] < curve[0], (stage, curve)
        assert summary["stages"][stage]["ranks_agree"] is True
    for tag in ("learning_rate", "grad_norm", "samples_per_s", "tokens_per_s"):
        assert scalars(tmp_path / "run", f"stage2/{tag}")
    assert all(norm > 0 for norm in scalars(tmp_path / "run", "stage2/grad_norm"))  # ZeRO-2's own record
    assert 0.0 <= summary["final_metrics"]["val_answer_accuracy"] <= 1.0
    assert "val_image_reliance" in summary["final_metrics"]
    assert (tmp_path / "run" / "model" / "connector.safetensors").is_file()
    metadata = json.loads((tmp_path / "run" / "model_metadata.json").read_text())
    assert metadata["num_image_tokens"] == 16 and metadata["parameters"]["connector"] > 0
    # layer -2 of the 4-layer encoder was resolved once, by the driver: everything written says layer 3
    saved = json.loads((tmp_path / "run" / "model" / "raylayers_model.json").read_text())
    assert metadata["selected_layers"] == metadata["vision_layers"] == saved["model"]["layers"] == [3]
    assert load_config(TrainConfig, tmp_path / "run" / "config.yaml").model.layers == [3]
    assert summary["layers"] == [3] and summary["encoder_layers"] == 4


def test_two_workers_zero3(tiny_stack, tmp_path):
    config = tiny_config(tiny_stack, "resources.num_workers=2", "deepspeed.zero_stage=3", "stages=[stage2]",
                         "cache.enabled=false")
    summary = run_training(config, tmp_path / "run")
    curve = scalars(tmp_path / "run", "stage2/loss")
    assert curve[-1] < curve[0]
    assert summary["stages"]["stage2"]["ranks_agree"] is True


@pytest.mark.parametrize("connector", sorted(CONNECTORS))
def test_every_connector_trains(connector, tiny_stack, tmp_path):
    layers = "[1,3]" if connector in ("concat", "mmfuser", "internal_direct") else "[]"
    config = tiny_config(tiny_stack, f"model.connector={connector}", f"model.layers={layers}", "stages=[stage1]",
                         "stage1.epochs=3", "deepspeed.zero_stage=0", "cache.dir=" + str(tmp_path.parent / "cache"))
    run_training(config, tmp_path / "run")
    curve = scalars(tmp_path / "run", "stage1/loss")
    assert curve[-1] < curve[0], curve
    # ZeRO-0 in fp32 keeps no gradient norm of its own: the step's is measured, never a 0.0 stand-in
    assert all(norm > 0 for norm in scalars(tmp_path / "run", "stage1/grad_norm"))


def test_bad_connector_or_layer_fails_before_any_worker(tiny_stack, tmp_path):
    with pytest.raises(UserError, match="unknown connector 'fancy' \\(valid: linear, mlp2x_gelu"):
        check_before_launch(tiny_config(tiny_stack, "model.connector=fancy"))
    with pytest.raises(UserError, match="layer 9 requested, encoder has 4 layers"):
        check_before_launch(tiny_config(tiny_stack, "model.layers=[9]"))
    with pytest.raises(UserError, match="data.stage1"):
        check_before_launch(tiny_config(tiny_stack, f"data.stage1={tmp_path / 'nope.json'}"))


def test_deepspeed_config_fills_batch_sizes_and_precision(tiny_stack):
    config = tiny_config(tiny_stack, "resources.num_workers=2", "deepspeed.zero_stage=3")
    ds = deepspeed_config(config, config.stage1, 2, use_gpu=False, hidden_size=32)
    assert ds["train_batch_size"] == 8 and ds["gradient_accumulation_steps"] == 1
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"]["enabled"] is False
    assert isinstance(ds["zero_optimization"]["stage3_prefetch_bucket_size"], int)


def test_zero_1_and_2_run_as_stage_0_on_one_rank_unless_asked_or_given_a_json(tiny_stack, tmp_path):
    """One rank has nothing to partition: the shipped ZeRO-1/2 JSON becomes stage 0. Two ranks, ZeRO-3,
    `partition_one_rank` and a user's own JSON are left as they are."""
    def stage(*overrides, workers=1):
        config = tiny_config(tiny_stack, *overrides)
        return deepspeed_config(config, config.stage1, workers, use_gpu=False, hidden_size=32)[
            "zero_optimization"]["stage"]

    assert stage("deepspeed.zero_stage=2") == stage("deepspeed.zero_stage=1") == 0
    assert stage("deepspeed.zero_stage=2", workers=2) == 2 and stage("deepspeed.zero_stage=3") == 3
    assert stage("deepspeed.zero_stage=2", "deepspeed.partition_one_rank=true") == 2
    own = tmp_path / "ds.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert stage("deepspeed.zero_stage=2", f"deepspeed.config={own}") == 2


def test_bad_images_are_skipped_and_counted(tiny_stack, tmp_path):
    records = json.loads((tiny_stack / "world" / "stage1.json").read_text())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    records[0]["image"] = str(broken)
    records[1]["image"] = str(tmp_path / "missing.png")
    for record in records[2:]:
        record["image"] = str(tiny_stack / "world" / record["image"])
    (tmp_path / "stage1.json").write_text(json.dumps(records))
    config = tiny_config(tiny_stack, f"data.stage1={tmp_path / 'stage1.json'}", "stages=[stage1]",
                         "stage1.epochs=1", "cache.enabled=false", "data.val=null")
    summary = run_training(config, tmp_path / "run")
    assert sum(summary["skipped"].values()) == 2, summary["skipped"]
    assert summary["stages"]["stage1"]["samples"] == len(records) - 2


def _train_worker_pids():
    import psutil

    pids = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "RayTrainWorker" in cmdline:
            pids.append(process.pid)
    return pids


def test_killed_worker_resumes_from_the_last_checkpoint(tiny_stack, tmp_path):
    config = tiny_config(tiny_stack, "resources.num_workers=2", "stages=[stage1]", "stage1.epochs=12",
                         "checkpoint.every_steps=5", "cache.dir=" + str(tmp_path / "cache"), "data.val=null")
    out = tmp_path / "run"
    killed = []

    def kill_one_worker_after_a_checkpoint():
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            # kill once the controller has registered a checkpoint (its snapshot lists one)
            snapshots = list((out / "ray").glob("*/checkpoint_manager_snapshot.json"))
            if snapshots and "stage1-step" in snapshots[0].read_text():
                pids = _train_worker_pids()
                if pids:
                    os.kill(pids[-1], signal.SIGKILL)
                    killed.append(pids[-1])
                    return
            time.sleep(0.1)

    watcher = threading.Thread(target=kill_one_worker_after_a_checkpoint, daemon=True)
    watcher.start()
    summary = run_training(config, out)
    watcher.join(timeout=5)
    assert killed, "no worker was killed: the run finished before its first checkpoint"
    steps = summary["stages"]["stage1"]["steps"]
    assert steps == 12 * (48 // 8)
    assert summary["final_metrics"]["step"] == steps  # the step count is intact after the restart
    resumed = summary["resumed_from"]
    assert resumed is not None and resumed["step"] % 5 == 0 and 0 < resumed["step"] < steps
    assert summary["final_metrics"]["global_step"] == steps


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tiny_stack, tmp_path):
    config = tiny_config(tiny_stack, "stages=[stage1]", "stage1.learning_rate=1.0e+30", "stage1.epochs=1",
                         "checkpoint.every_steps=1", "data.val=null", "checkpoint.max_failures=0")
    with pytest.raises(UserError, match="loss became NaN/inf at stage1 step \\d+; last good checkpoint: .*step"):
        run_training(config, tmp_path / "run")


def test_cli_train_with_a_shipped_recipe_and_overrides(tiny_stack, tmp_path, capsys):
    from raylayers.cli import main

    world, encoder = tiny_stack / "world", tiny_stack / "encoder"
    argv = ["train", "--config", "demo", "--out", str(tmp_path / "run"),
            "--set", f"model.encoder={encoder}", "--set", f"model.lm={encoder / 'lm'}",
            "--set", f"data.stage1={world / 'stage1.json'}", "--set", f"data.stage2={world / 'stage2.json'}",
            "--set", f"data.val={world / 'stage2_val.json'}", "--set", "data.max_length=160",
            "--set", "stage1.max_steps=2", "--set", "stage2.max_steps=2", "--set", "data.val_records=8",
            "--set", "stage1.global_batch_size=8", "--set", "stage1.micro_batch_size=4",
            "--set", "stage2.global_batch_size=8", "--set", "stage2.micro_batch_size=4",
            "--set", "resources.cpus_per_worker=1", "--set", f"cache.dir={tmp_path / 'cache'}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "val_answer_accuracy" in out and "model written to" in out
    assert (tmp_path / "run" / "model" / "raylayers_model.json").is_file()
    for mode in ("greedy", "likelihood"):  # the trained model on the offline suite, both answer modes
        assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--bench", str(world), "--out",
                     str(tmp_path / mode), "--mode", mode, "--limit", "4"]) == 0
        scores = json.loads((tmp_path / mode / "scores.json").read_text())
        assert set(scores["categories"]) == {"general", "ocr", "vision_centric", "hallucination"}
        assert 0.0 <= scores["overall"] <= 1.0 and scores["mode"] == mode
    assert main(["train", "--config", "demo", "--out", str(tmp_path / "x"), "--set", "stage1.lr=1"]) == 2
    assert "unknown key 'stage1.lr'" in capsys.readouterr().err


def test_worker_side_user_errors_are_one_line(tiny_stack, tmp_path, capsys):
    from raylayers.cli import main

    records = json.loads((tiny_stack / "world" / "stage1.json").read_text())
    for record in records:
        record["image"] = "gone/" + record["image"]
    (tmp_path / "stage1.json").write_text(json.dumps(records))
    world, encoder = tiny_stack / "world", tiny_stack / "encoder"
    argv = ["train", "--config", "demo", "--out", str(tmp_path / "run"), "--set", f"model.encoder={encoder}",
            "--set", f"model.lm={encoder / 'lm'}", "--set", f"data.stage1={tmp_path / 'stage1.json'}",
            "--set", f"data.stage2={world / 'stage2.json'}", "--set", "data.val=null", "--set", "stages=[stage1]",
            "--set", "checkpoint.max_failures=0", "--set", "cache.enabled=false"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stage1: no usable records" in err[0] and "missing" in err[0]


def _wait_for(condition, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline and not condition():
        time.sleep(0.2)
    return condition()


def test_ctrl_c_stops_ray_says_where_to_resume_and_the_resume_takes_the_newest_whole_checkpoint(tiny_stack, tmp_path):
    """SIGINT to the process group, as a terminal's Ctrl-C sends it: exit 130, one line naming the newest checkpoint
    and the resume command, no Ray process left. A newer checkpoint cut short (as an interrupt mid-write leaves one)
    is passed over: `--resume` starts from the newest whole one on disk, whatever Ray's own record says."""
    import shutil
    import subprocess
    import sys

    import psutil

    from raylayers.config import dump_yaml
    from raylayers.train.checkpoint import newest_complete

    config = tiny_config(tiny_stack, "stages=[stage1]", "stage1.epochs=12", "checkpoint.every_steps=3",
                         f"cache.dir={tmp_path / 'cache'}", "data.val=null")
    (tmp_path / "train.yaml").write_text(dump_yaml(config))
    out, runs = tmp_path / "run", tmp_path / "run" / "ray" / config.name
    argv = [sys.executable, "-m", "raylayers.cli", "train", "--config", str(tmp_path / "train.yaml"), "--out", str(out)]
    env = {**os.environ, "RAYLAYERS_PROGRESS": "0"}
    driver = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    assert _wait_for(lambda: (newest_complete(runs, 1) or runs / "stage1-step000000").name >= "stage1-step000006")
    children = psutil.Process(driver.pid).children(recursive=True)
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=180)
    assert driver.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    newest = newest_complete(runs, 1)
    assert last == (f"raylayers train: interrupted (SIGINT); newest checkpoint: {newest}; resume with: raylayers "
                    f"train --config {tmp_path / 'train.yaml'} --out {out} --resume"), err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, [p.cmdline()[:3] for p in alive]  # the local cluster went with the command
    partial = Path(shutil.copytree(newest, runs / "stage1-step000999"))
    state = json.loads((partial / "state.json").read_text())
    (partial / "state.json").write_text(json.dumps({**state, "step": 999, "global_step": 999}))
    weights = partial / "weights" / "connector.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    done = subprocess.run(argv + ["--resume"], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["resumed_from"]["global_step"] == state["global_step"] >= 6
    assert summary["final_metrics"]["step"] == summary["stages"]["stage1"]["steps"] == 12 * 6


def test_a_run_stopped_after_its_last_checkpoint_writes_its_model_on_resume(tiny_stack, tmp_path):
    """Stopped between the last stage's end checkpoint and the model save: `--resume` trains nothing and writes
    the model from that checkpoint's weights, with its final metrics."""
    import shutil

    config = tiny_config(tiny_stack, "stages=[stage1]", "stage1.max_steps=2", f"cache.dir={tmp_path / 'cache'}",
                         "data.val=null")
    out = tmp_path / "run"
    first = run_training(config, out)
    shutil.rmtree(out / "model")
    (out / "train_summary.json").unlink()
    summary = run_training(config, out, resume=True)
    assert summary["resumed_from"] == {"stage": "stage1", "step": 2, "global_step": 2}
    assert summary["final_metrics"]["loss"] == first["final_metrics"]["loss"]
    assert (out / "model" / "raylayers_model.json").is_file()
