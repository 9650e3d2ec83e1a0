"""The frozen-feature cache: demo-scale training with and without it, in the same run, as ratios.

    .venv/bin/python benchmarks/train_cache.py                # needs runs/demo (world + encoder from the demo)
    .venv/bin/python benchmarks/train_cache.py --steps 40

Three runs of the same stage-1 training (`raylayers train` with the demo recipe, Ray Train + DeepSpeed, one
worker): no cache (the tower runs on every batch), a cold cache (features computed once in a pre-pass, then read),
and a warm cache (a later trial or stage with the same encoder and images: nothing to compute). Ray is started
before the first timing. Reported per run: the image pre-pass (decode/check every image; with the cache, compute
the missing features), the step loop's samples/s, and both together.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default="runs/demo")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()

    from raylayers.config import TrainConfig, load_config, resolve_config_path
    from raylayers.ray_session import init_ray
    from raylayers.train import run_training

    init_ray()  # started once, outside the timings
    demo = Path(args.demo_dir)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for name, cache_settings in (("no cache", ["cache.enabled=false"]),
                                     ("cold cache", ["cache.enabled=true", f"cache.dir={cache}"]),
                                     ("warm cache", ["cache.enabled=true", f"cache.dir={cache}"])):
            overrides = [f"model.encoder={demo / 'encoder'}", f"model.lm={demo / 'encoder' / 'lm'}",
                         f"data.stage1={demo / 'world' / 'stage1.json'}", "data.val=null", "stages=[stage1]",
                         f"stage1.max_steps={args.steps}", "checkpoint.every_steps=100000", *cache_settings]
            config = load_config(TrainConfig, resolve_config_path("demo"), overrides)
            out = Path(tmp) / name.replace(" ", "_")
            started = time.perf_counter()
            summary = run_training(config, out)
            wall = time.perf_counter() - started
            stage = summary["stages"]["stage1"]
            samples = stage["steps"] * config.stage1.global_batch_size
            total = stage["prepare_seconds"] + stage["seconds"]
            results[name] = {"prepare_seconds": stage["prepare_seconds"], "loop_seconds": stage["seconds"],
                             "loop_samples_per_s": samples / stage["seconds"],
                             "stage_samples_per_s": samples / total, "wall_seconds": wall}
            print(f"{name:>10}: pre-pass {stage['prepare_seconds']:.1f}s, loop {stage['seconds']:.1f}s "
                  f"({samples / stage['seconds']:.1f} samples/s), both {samples / total:.1f} samples/s, "
                  f"wall {wall:.1f}s", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    base = results["no cache"]
    for name, entry in results.items():
        entry["loop_speedup_vs_no_cache"] = entry["loop_samples_per_s"] / base["loop_samples_per_s"]
        entry["stage_speedup_vs_no_cache"] = entry["stage_samples_per_s"] / base["stage_samples_per_s"]
    print(json.dumps({"steps": args.steps, "results": results}, indent=2))


if __name__ == "__main__":
    main()
