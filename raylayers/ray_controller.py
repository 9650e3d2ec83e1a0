"""What Ray Train's controller unpickles for a raylayers run, kept in a module that never imports torch.

Every `fit()` starts a Ray Train controller in a fresh process, which unpickles the trainer's callbacks and backend
config, importing the modules their classes live in. Ray's `TorchConfig` lives in `ray.train.torch.config`, which
imports torch at its top, and a callback defined under `raylayers.train` imports the whole training package (torch,
transformers' config classes), in a process that never touches a tensor. With these two classes from here, the
controller imports no torch at all (checked with a controller callback that lists `sys.modules`), and the floor of a
`fit()` on 2 cores fell from 9.62 s to 7.71 s (`benchmarks/ray_train_floor.py`'s setting, 8 fits each in turn).

- `CleanerStoppedWithoutWaiting`: Ray's placement-group cleaner callback, whose stop is sent and not waited for
  (`raylayers.train.ray_trainer` says why).
- `ProcessGroupConfig` / `ProcessGroupBackend`: `TorchConfig`'s settings, and what Ray's `_TorchBackend` does for a
  CPU (gloo) or GPU (nccl) worker group, from the controller: the rank-0 address and a free port, MASTER_ADDR/PORT
  and torch.distributed's environment variables on every worker, `init_process_group` on each rank; at the end, the
  same shutdown. The work on the workers is Ray's own functions (`ray.train.torch.config`), imported there, where
  torch is loaded anyway; only the order of the calls is written here, after Ray 2.60's `_TorchBackend` (its TPU
  and `init_method="tcp"` set-ups are left out: raylayers uses neither). `available()` says whether this Ray has
  those functions; without them the driver uses Ray's `TorchConfig`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from ray.train.backend import Backend, BackendConfig

try:
    from ray.train.v2._internal.callbacks.placement_group_callback import (
        PlacementGroupCleanerCallback as RayCleanerCallback,
    )
except ImportError:  # a Ray without it: `raylayers.train.ray_trainer` falls back to Ray's TorchTrainer
    RayCleanerCallback = None

_RAY_TORCH = "ray.train.torch.config"
_WORKER_FUNCTIONS = ("_setup_torch_process_group", "_set_torch_distributed_env_vars", "_shutdown_torch",
                     "TorchConfigContextManager")


def available() -> bool:
    """Whether this Ray has the worker-side functions `ProcessGroupBackend` calls (checked in the driver, where
    torch is loaded)."""
    if importlib.util.find_spec(_RAY_TORCH) is None:
        return False
    module = importlib.import_module(_RAY_TORCH)
    return all(callable(getattr(module, name, None)) for name in _WORKER_FUNCTIONS)


def _ray_torch(name: str):
    return getattr(importlib.import_module(_RAY_TORCH), name)


def _address_and_port() -> tuple[str, int]:
    from ray.train._internal.utils import get_address_and_port

    return get_address_and_port()


def _set_master(addr: str, port: int) -> None:
    os.environ["MASTER_ADDR"] = addr
    os.environ["MASTER_PORT"] = str(port)


def _set_distributed_env_vars() -> None:
    _ray_torch("_set_torch_distributed_env_vars")()


def _setup_process_group(**kwargs) -> None:
    _ray_torch("_setup_torch_process_group")(**kwargs)


def _shutdown(destroy_process_group: bool) -> None:
    _ray_torch("_shutdown_torch")(destroy_process_group=destroy_process_group)


class ProcessGroupBackend(Backend):
    """Ray's `_TorchBackend` for gloo and nccl, run from a controller that has not imported torch."""

    share_cuda_visible_devices: bool = True

    def on_start(self, worker_group, backend_config: ProcessGroupConfig):
        import ray

        if backend_config.backend is None:
            backend = "nccl" if worker_group.get_resources_per_worker().get("GPU", 0) > 0 else "gloo"
        else:
            backend = backend_config.backend
        addr, port = worker_group.execute_single(0, _address_and_port)
        worker_group.execute(_set_master, addr=addr, port=port)
        worker_group.execute(_set_distributed_env_vars)
        ray.get([worker_group.execute_single_async(rank, _setup_process_group, backend=backend, world_rank=rank,
                                                   world_size=len(worker_group), init_method="env://",
                                                   timeout_s=backend_config.timeout_s)
                 for rank in range(len(worker_group))])

    def on_shutdown(self, worker_group, backend_config):
        import ray
        from ray.exceptions import GetTimeoutError
        from ray.train.constants import (
            DEFAULT_TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S,
            TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S,
        )

        futures = worker_group.execute_async(_shutdown, destroy_process_group=len(worker_group) > 1)
        timeout = float(os.environ.get(TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S,
                                       DEFAULT_TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S))
        try:
            ray.get(futures, timeout=timeout)
        except GetTimeoutError:  # as Ray's: a hung process group must not keep the run from ending
            pass


@dataclass
class ProcessGroupConfig(BackendConfig):
    """`TorchConfig`'s settings (backend None: nccl with GPUs, else gloo), read by a controller without torch."""

    backend: str | None = None
    timeout_s: int = 1800

    @property
    def backend_cls(self):
        return ProcessGroupBackend

    @property
    def train_func_context(self):
        return _ray_torch("TorchConfigContextManager")  # read in the driver, which has torch

    @property
    def framework(self):
        from ray.train.v2._internal.util import TrainingFramework

        return TrainingFramework.TORCH

    def to_dict(self) -> dict:
        return {"backend": self.backend, "init_method": "env", "timeout_s": self.timeout_s}


class CleanerStoppedWithoutWaiting(RayCleanerCallback or object):
    """Ray's placement-group cleaner callback; its stop is sent, not waited for (`raylayers.train.ray_trainer`)."""

    def _stop_cleaner(self):
        cleaner = getattr(self, "_cleaner", None)
        if cleaner is None:
            return
        try:
            cleaner.stop.remote()
        except Exception:  # noqa: BLE001 (the cleaner exits by itself once the controller is gone)
            pass
        finally:
            self._cleaner = None
