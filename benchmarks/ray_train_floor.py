"""What Ray Train V2 itself costs per `fit()` here: the floor under a search trial's fixed cost.

    .venv/bin/python benchmarks/ray_train_floor.py              # a warm-up fit of each, then 5 of each

A warm driver (torch and Ray Train imported once, as in a reused Tune trial actor) runs `TorchTrainer.fit()` with one
worker of 2 CPUs and gloo, the way a raylayers trial does (`init_ray` and the trial's health-check interval: the
same cluster settings), for a train function that returns at once. What is left is Ray Train's own start and end:
its controller and helper actors, the placement group, the worker's process (with torch and Ray Train imported) and
torch.distributed set-up, then their shutdown. `benchmarks/trial_overhead.py` measures a whole trial; its fixed cost
minus this floor is what a trial adds on top of Ray Train (DeepSpeed and transformers imports, the model, the data).
It runs two trainers in turn: Ray's own `TorchTrainer` with its `TorchConfig`, and what raylayers runs
(`raylayers.train.ray_trainer`: the same without the wait for the placement-group cleaner's stop at the end of every
fit; `raylayers.ray_controller`: the backend config and callbacks in a module whose controller imports no torch), so
the saving is measured on the same machine in the same minutes.
Results: `benchmarks/results/ray_train_floor.json` and a line per fit on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def empty(config: dict) -> None:
    import ray.train

    ray.train.get_context()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=5, help="measured fits of each trainer (after a warm-up fit)")
    parser.add_argument("--out", default="benchmarks/results/ray_train_floor.json")
    args = parser.parse_args()
    import os

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import torch  # noqa: F401 (the driver is warm: a reused trial actor has torch imported)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from raylayers.ray_session import init_ray
    from raylayers.train.driver import HEALTH_CHECK_INTERVAL_S, backend_config
    from raylayers.train.ray_trainer import trainer_class

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", str(HEALTH_CHECK_INTERVAL_S))  # as a trial's fit()
    init_ray(num_cpus=2)
    # Ray's own, and what raylayers runs
    trainers = {"ray": (TorchTrainer, TorchConfig), "raylayers": (trainer_class(), backend_config)}
    seconds: dict[str, list[float]] = {name: [] for name in trainers}
    with tempfile.TemporaryDirectory() as storage:
        for index in range(1 + args.fits):  # the two in turn, so both see the same machine
            for name, (cls, config) in trainers.items():
                trainer = cls(empty, scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 2}),
                              torch_config=config(backend="gloo"),
                              run_config=RunConfig(name=f"floor-{name}-{index}", storage_path=storage))
                started = time.perf_counter()
                trainer.fit()
                took = time.perf_counter() - started
                print(f"{name:9s} fit {index}{' (warm-up)' if index == 0 else ''}: {took:.2f}s", flush=True)
                if index:
                    seconds[name].append(round(took, 3))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    result = {"seconds": seconds, "median": medians, "saved_median": round(medians["ray"] - medians["raylayers"], 3),
              "ratio": round(medians["ray"] / medians["raylayers"], 3), "trainer": trainers["raylayers"][0].__name__,
              "backend_config": type(backend_config("gloo")).__name__,
              "cpu_count": os.cpu_count()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name, values in seconds.items():
        print(f"{name:9s} median fit() of a train function that returns at once: {medians[name]:.2f}s "
              f"(min {min(values):.2f}s, max {max(values):.2f}s)")
    print(f"raylayers' trainer saves {result['saved_median']:.2f}s per fit (x{result['ratio']:.2f}); "
          f"written {args.out}")


if __name__ == "__main__":
    main()
