"""Two Ray nodes simulated on this machine with Ray's own multi-node test utility (`ray.cluster_utils.Cluster`:
separate raylets with their own resources, loopback only): training spread over both nodes, a node lost in the
middle of a run, and a search whose trials use both nodes. Each test starts its cluster and stops it."""

import json
import threading
import time

import pytest

from raylayers.config import TrainConfig, load_config
from raylayers.search.results import read_results
from raylayers.train import run_training

pytestmark = pytest.mark.slow


@pytest.fixture
def two_nodes(monkeypatch):
    """A head and a second node with one CPU each (so two one-CPU workers must use both), joined through
    RAY_ADDRESS as a cluster's driver joins it; everything stopped afterwards."""
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def node_ids(cluster) -> set:
    return {node.node_id for node in cluster.list_all_nodes()}


def two_worker_config(stack, tmp_path, *overrides):
    world, encoder = stack / "world", stack / "encoder"
    data = {
        "model": {"encoder": str(encoder), "lm": str(encoder / "lm"), "connector": "mlp2x_gelu", "layers": [-2]},
        "data": {"stage1": str(world / "stage1.json"), "stage2": str(world / "stage2.json"), "val": None,
                 "max_length": 160},
        "stage1": {"learning_rate": 3e-3, "epochs": 100, "global_batch_size": 8, "micro_batch_size": 4},
        "stages": ["stage1"],
        "resources": {"num_workers": 2, "cpus_per_worker": 1, "storage_path": str(tmp_path / "shared")},
        "checkpoint": {"every_steps": 30, "max_failures": 2},
        "cache": {"dir": str(tmp_path / "cache")},
        "probe_every_steps": 0,
    }
    return load_config(TrainConfig, data=data, overrides=list(overrides))


def in_background(function, *args) -> tuple[threading.Thread, dict]:
    """`function(*args)` in a thread, its result or error in the dict ("summary" / "error"): Ray starts a node only
    from the main thread, where the test loses a node and adds one while the run goes on."""
    outcome = {}

    def run():
        try:
            outcome["summary"] = function(*args)
        except BaseException as err:  # noqa: BLE001 (handed to the test)
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def groups(out) -> list[dict]:
    return [json.loads(line) for line in (out / "worker_groups.jsonl").read_text().splitlines()]


def test_two_workers_on_two_nodes_survive_losing_one_and_resume_from_the_last_checkpoint(tiny_stack, tmp_path,
                                                                                            two_nodes):
    """Rank 0 on one node, rank 1 on the other, checkpoints in a storage path both reach. Once Ray Train has
    recorded a checkpoint, the second node is removed (its worker dies with it) and a fresh node is added: Ray
    Train starts a new worker group, which resumes from the last checkpoint and finishes the run. (600 steps, about
    15 s here: the node must go while the run still trains; with 60 steps it had 1.5 s.)"""
    config = two_worker_config(tiny_stack, tmp_path)
    out = tmp_path / "run"
    first_nodes = node_ids(two_nodes)
    checkpoints = tmp_path / "shared" / config.name
    trainer, outcome = in_background(run_training, config, out)
    deadline = time.time() + 300
    snapshot = checkpoints / "checkpoint_manager_snapshot.json"  # Ray Train's record: a checkpoint it can restore
    while time.time() < deadline and trainer.is_alive() and not (
            snapshot.is_file() and "stage1-step" in snapshot.read_text()):
        time.sleep(0.1)
    second = two_nodes.worker_nodes.copy().pop()
    two_nodes.remove_node(second)  # its worker dies with it
    two_nodes.add_node(num_cpus=1)  # a replacement, as an autoscaler would bring one
    trainer.join(timeout=600)  # bounded: the fixture stops the cluster either way
    assert not trainer.is_alive(), "the run did not finish within 600 s of losing a node"
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    started = groups(out)
    assert set(started[0]["nodes"]) == first_nodes  # one worker per node
    assert len(started) >= 2 and second.node_id in started[0]["nodes"] and second.node_id not in started[-1]["nodes"]
    resumed = summary["resumed_from"]
    assert resumed is not None and resumed["step"] % 30 == 0 and resumed["step"] > 0
    assert summary["final_metrics"]["step"] == summary["stages"]["stage1"]["steps"] == 100 * 6
    assert summary["stages"]["stage1"]["ranks_agree"]
    assert (out / "model" / "raylayers_model.json").is_file()
    assert list(checkpoints.glob("stage1-step*-end"))  # the checkpoints went where both nodes write


def test_a_search_uses_both_nodes_and_keeps_its_results_table(tiny_stack, tmp_path, two_nodes):
    """Two training trials of two workers each, one after the other: every trial uses both nodes (one CPU each).
    While the second trains, past its first checkpoint, a node is lost and a fresh one added: that trial resumes
    from its checkpoint and completes, and the first trial's row is kept as it was."""
    from raylayers.search.tuner import run_search

    world, encoder = tiny_stack / "world", tiny_stack / "encoder"
    (tmp_path / "base.yaml").write_text(f"""
model: {{encoder: {encoder}, lm: {encoder / 'lm'}, connector: mlp2x_gelu, layers: [-2]}}
data: {{stage1: {world / 'stage1.json'}, stage2: {world / 'stage2.json'}, val: {world / 'stage2_val.json'},
        max_length: 160, val_records: 8}}
stage1: {{learning_rate: 3.0e-3, max_steps: 2, global_batch_size: 8, micro_batch_size: 4}}
stage2: {{learning_rate: 3.0e-3, max_steps: 400, epochs: 100, global_batch_size: 8, micro_batch_size: 4,
         train_lm: true, template: chat}}
resources: {{num_workers: 2, cpus_per_worker: 1, storage_path: {tmp_path / 'shared'}}}
checkpoint: {{every_steps: 100}}
probe_every_steps: 0
""")
    space = tmp_path / "space.yaml"
    space.write_text(f"""
base: {{config: {tmp_path / 'base.yaml'}, set: {{cache.dir: {tmp_path / 'cache'}}}}}
lrs: {{file: {tmp_path / 'lrs' / 'lrs.json'}, images: {world / 'images'}, groups: "2", max_images: 32}}
space: {{num_layers: [1], layers: [-2], hyperparameters: {{stage2.learning_rate: {{choice: [3.0e-3, 1.0e-3]}}}}}}
objective: {{bench: {world / 'bench'}, limit: 3}}
budget: {{trials: 2, searcher: grid, retries: 1}}
""")
    out = tmp_path / "out"
    searching, outcome = in_background(run_search, space, out)

    def second_trial_checkpointed() -> bool:  # the first trial recorded, the second past its first checkpoint
        # (Ray Train writes a run's snapshot at its first checkpoint, the end of stage 1; the first trial's has
        # dropped its stage-1 checkpoint by now: `checkpoint.keep`)
        snapshots = list((tmp_path / "shared").glob("*/checkpoint_manager_snapshot.json"))
        return len(read_results(out / "results.parquet")) == 1 and len(snapshots) == 2

    deadline = time.time() + 300
    while time.time() < deadline and searching.is_alive() and not second_trial_checkpointed():
        time.sleep(0.1)
    first = read_results(out / "results.parquet")
    second = two_nodes.worker_nodes.copy().pop()
    two_nodes.remove_node(second)
    two_nodes.add_node(num_cpus=1)
    searching.join(timeout=600)
    assert not searching.is_alive(), "the search did not finish within 600 s of losing a node"
    assert "error" not in outcome, outcome.get("error")
    rows = read_results(out / "results.parquet")
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows) and outcome["summary"]["completed"] == 2
    assert len(first) == 1 and rows[0] == first[0]  # the row written before the node was lost, unchanged
    lost = json.loads((out / "trials" / rows[1]["trial_id"] / "train_summary.json").read_text())
    # it resumed from its stage-1 checkpoint, or from a stage-2 one (every 100 steps) when it had passed it before
    # the node went. The node goes as soon as the test sees the stage-1 checkpoint; the 400 stage-2 steps (about
    # 10 s here) are that window. With 20 steps (0.5 s) the trial once finished training before the node was lost
    resumed = lost["resumed_from"]
    assert resumed is not None and resumed["global_step"] >= 2 and resumed["stage"] in ("stage1", "stage2")
    assert second.node_id not in lost["nodes"] and len(set(lost["nodes"])) == 2
    kept = json.loads((out / "trials" / rows[0]["trial_id"] / "train_summary.json").read_text())
    assert len(set(kept["nodes"])) == 2  # one worker on each node
