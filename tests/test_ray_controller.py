"""raylayers.ray_controller: what Ray Train's controller unpickles for a raylayers run imports no torch, and the
process group it sets up is torch.distributed's, rank by rank, as Ray's `TorchConfig` sets it up."""

import json

from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchConfig

from raylayers.ray_controller import ProcessGroupBackend, ProcessGroupConfig, available
from raylayers.ray_session import init_ray
from raylayers.train.driver import backend_config
from raylayers.train.ray_trainer import trainer_class


def _fit(tmp_path, name: str, torch_config, workers: int = 1):
    """A real fit whose train function all-reduces its rank + 1 and writes what it sees; a controller callback
    writes whether the controller process has imported torch. Returns (controller record, worker records)."""
    from ray.train.v2._internal.execution.callback import ControllerCallback

    probe_file, worker_file = tmp_path / f"{name}-controller.jsonl", tmp_path / f"{name}-workers.jsonl"

    class ControllerProbe(ControllerCallback):  # defined here: pickled by value, as the controller cannot import tests/
        def after_controller_start(self, train_run_context):
            import sys

            with open(probe_file, "a") as handle:
                handle.write(json.dumps({"torch": "torch" in sys.modules}) + "\n")

    def all_reduce(config):
        import os

        import torch
        import torch.distributed as dist

        total = torch.ones(1) * (dist.get_rank() + 1)
        dist.all_reduce(total)
        with open(worker_file, "a") as handle:
            handle.write(json.dumps({"rank": dist.get_rank(), "world": dist.get_world_size(), "sum": total.item(),
                                     "backend": dist.get_backend(), "local_rank": os.environ.get("LOCAL_RANK"),
                                     "master": bool(os.environ.get("MASTER_ADDR"))}) + "\n")

    result = trainer_class()(all_reduce, scaling_config=ScalingConfig(num_workers=workers,
                                                                      resources_per_worker={"CPU": 1}),
                             torch_config=torch_config, run_config=RunConfig(
                                 name=name, storage_path=str(tmp_path / "ray"), callbacks=[ControllerProbe()])).fit()
    assert result.error is None
    workers_seen = sorted((json.loads(line) for line in worker_file.read_text().splitlines()),
                          key=lambda record: record["rank"])
    return json.loads(probe_file.read_text()), workers_seen


def test_the_driver_uses_the_torch_free_config_when_this_ray_has_what_it_calls():
    assert available()
    config = backend_config("gloo")
    assert isinstance(config, ProcessGroupConfig) and config.backend_cls is ProcessGroupBackend
    assert config.to_dict() == TorchConfig(backend="gloo").to_dict()


def test_the_controller_imports_no_torch_and_the_workers_get_rays_process_group(tmp_path):
    init_ray()
    stock, _ = _fit(tmp_path, "stock", TorchConfig(backend="gloo"))
    assert stock == {"torch": True}  # Ray's own config makes its controller import torch: the probe can tell
    ours, workers = _fit(tmp_path, "ours", backend_config("gloo"), workers=2)
    assert ours == {"torch": False}
    assert workers == [{"rank": rank, "world": 2, "sum": 3.0, "backend": "gloo", "local_rank": str(rank),
                        "master": True} for rank in range(2)]
