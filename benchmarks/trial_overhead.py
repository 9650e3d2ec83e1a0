"""Where a search trial's time goes: one real demo-recipe search (Tune trial -> TorchTrainer -> DeepSpeed ->
evaluation) broken down span by span, next to the same training steps in a plain in-process loop.

    .venv/bin/python benchmarks/trial_overhead.py              # needs runs/demo (world, encoder, LRS of the demo)
    .venv/bin/python benchmarks/trial_overhead.py --trials 4

The plain loop runs twice: with the recipe's length-grouped order, then with plain shuffling
(`data.length_group_batches=0`), the same steps: what length grouping saves per step.
The search is `raylayers search` itself, run as a user runs it, on the demo's recipe (30 stage-1 + 40 stage-2 steps,
probes every 20 steps, likelihood evaluation of 420 questions) and a space of one layer (the penultimate) with
several connector/learning-rate choices, grid order, no early stopping, a fresh feature and sample cache. Trial 1
pays for what a search pays once (the layer's features, the token ids, DeepSpeed's op load); the later trials are
what every further trial costs. Every process of a trial writes its spans into `timings.jsonl` (raylayers/timings.py);
a trial's wall time runs from the end of the previous trial (the first: from its process's start) to its end, so
Tune's own work between trials is in it. **Fixed cost** = wall time - training steps - probes - evaluation forwards.

The plain loop then trains the same model on the same samples and cached features for the same steps, in this
process, with torch AdamW and no Ray or DeepSpeed: the step time a trial's steps are compared with.
Results: `benchmarks/results/trial_overhead.json`, a bar chart next to it (`.png`) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ORDER = ["Tune trial start (process, imports)", "training checks", "Ray Train start (controller, placement)",
         "worker start (process, imports)", "worker setup (imports, tokenizer, TensorBoard)", "model build",
         "data preparation", "feature pre-pass", "DeepSpeed init", "training steps", "probes",
         "reports + TensorBoard", "checkpoints + model save", "evaluation load", "evaluation forwards",
         "evaluation scoring + writing", "Ray Train end", "other (Tune between trials, gaps)"]
WORK = ("training steps", "probes", "evaluation forwards")
WORK_COLOURS = ("#2e7d32", "#66bb6a", "#a5d6a7")


def space_yaml(demo: Path, cache: Path, trials: int) -> str:
    return json.dumps({
        "name": "trial-overhead",
        "base": {"config": "demo", "set": {
            "stage1.max_steps": 30, "stage1.train_lm": True, "stage2.max_steps": 40,
            "stage2.learning_rate": 3.0e-4, "probe_every_steps": 20, "data.val_records": 48,
            "model.encoder": str(demo / "encoder"), "model.lm": str(demo / "encoder" / "lm"),
            "data.stage1": str(demo / "world" / "stage1.json"), "data.stage2": str(demo / "world" / "stage2.json"),
            "data.val": str(demo / "world" / "stage2_val.json"), "cache.dir": str(cache)}},
        "lrs": {"file": str(demo / "lrs" / "lrs.json")},
        "space": {"num_layers": [1], "layers": [-2], "single_connectors": ["mlp2x_gelu", "linear"],
                  "hyperparameters": {"stage2.learning_rate": {"choice": [3.0e-4, 1.0e-3, 2.0e-3]}},
                  "baseline": False, "priors": False},
        "objective": {"bench": str(demo / "world" / "bench"), "mode": "likelihood", "limit": 60, "batch_size": 32},
        "budget": {"trials": trials, "concurrency": 1, "searcher": "grid", "grace_period": 0, "retries": 0},
    })  # JSON is YAML


def breakdown(spans: list[dict], since: float) -> dict:
    """Seconds per ORDER entry for one trial's spans; `since`: where its wall time starts."""
    total = {}

    def summed(name: str) -> float:
        return sum(s["seconds"] for s in spans if s["span"] == name)

    def first(name: str) -> dict:
        return next(s for s in spans if s["span"] == name)

    fit, worker, trial = first("ray train fit"), first("worker process"), first("trial")
    total[ORDER[0]] = first("trial process")["seconds"] + first("trial imports")["seconds"]
    total["training checks"] = summed("training checks")
    total[ORDER[2]] = max(0.0, worker["start"] - fit["start"])
    total[ORDER[3]] = worker["seconds"]
    total[ORDER[4]] = summed("worker setup")
    total["model build"] = summed("model build")
    total["feature pre-pass"] = summed("feature pre-pass")
    total["data preparation"] = summed("data preparation") - total["feature pre-pass"]
    total["DeepSpeed init"] = summed("deepspeed init")
    total["training steps"] = summed("training steps")
    total["probes"] = summed("probes")
    total["reports + TensorBoard"] = summed("reports") + summed("tensorboard")
    total["checkpoints + model save"] = summed("checkpoints") + summed("model save")
    total["evaluation load"] = summed("evaluation load")
    total["evaluation forwards"] = summed("evaluation forwards")
    total["evaluation scoring + writing"] = summed("evaluation") - total["evaluation load"] - \
        total["evaluation forwards"]
    worker_end = max(s["end"] for s in spans if s["pid"] == worker["pid"])
    total["Ray Train end"] = max(0.0, fit["end"] - worker_end)
    wall = trial["end"] - since
    total[ORDER[-1]] = wall - sum(total.values())
    work = sum(total[name] for name in WORK)
    return {"wall_seconds": wall, "fixed_seconds": wall - work, "work_seconds": work,
            "breakdown": {name: round(total[name], 3) for name in ORDER}}


def search(demo: Path, folder: Path, trials: int) -> list[dict]:
    """Run the search (the CLI, as a user does) and return each trial's breakdown, in the order they ran."""
    space = folder / "space.yaml"
    space.write_text(space_yaml(demo, folder / "cache", trials))
    started = time.time()
    command = [str(Path(sys.executable).parent / "raylayers"), "search", "--space", str(space),
               "--out", str(folder / "search")]
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True)
    from raylayers import timings

    runs = sorted((timings.read(path.parent) for path in (folder / "search" / "trials").glob("*/timings.jsonl")),
                  key=lambda spans: min(s["start"] for s in spans))
    results, since = [], None
    for spans in runs:
        process = next(s for s in spans if s["span"] == "trial process")
        entry = breakdown(spans, since if since is not None else process["start"])
        entry["search_started"] = round(process["start"] - started, 2)
        results.append(entry)
        since = next(s for s in spans if s["span"] == "trial")["end"]
    return results


def plain_loop(demo: Path, cache: Path, length_group_batches: int | None = None) -> dict:
    """The trial's training steps in this process: same model, samples, cached features, batches and steps;
    torch AdamW (+ gradient clipping at 1.0, as the DeepSpeed config does), no Ray, no DeepSpeed.
    `length_group_batches`: instead of the recipe's `data.length_group_batches` (0: plain shuffling)."""
    import torch

    from raylayers.config import TrainConfig, load_config, resolve_config_path
    from raylayers.data import ConversationEncoder, SampleOrder, collate, encode_samples
    from raylayers.feature_cache import FeatureCache
    from raylayers.features import ImageFeatures
    from raylayers.model import LlavaLayers, load_tokenizer
    from raylayers.train.schedule import stage_schedule

    torch.set_num_threads(2)
    config = load_config(TrainConfig, resolve_config_path("demo"), [
        f"model.encoder={demo / 'encoder'}", f"model.lm={demo / 'encoder' / 'lm'}", "model.layers=[-2]",
        f"data.stage1={demo / 'world' / 'stage1.json'}", f"data.stage2={demo / 'world' / 'stage2.json'}",
        "data.val=null"] + ([] if length_group_batches is None else [
            f"data.length_group_batches={length_group_batches}"]))
    timings, started = {}, time.perf_counter()
    tokenizer = load_tokenizer(config.model.lm)
    model = LlavaLayers.build(config.model, tokenizer, seed=config.seed)
    model.requires_grad_(False)
    model.connector.requires_grad_(True)
    model.lm.requires_grad_(True)  # the demo recipe trains the LM in both stages
    timings["model build"] = time.perf_counter() - started
    features = ImageFeatures(model, FeatureCache(cache, model.tower.fingerprint()), 0, 1, torch.device("cpu"))
    steps_seconds, total_steps, real_share = 0.0, 0, {}
    for name, data_file, template, steps in (("stage1", demo / "world" / "stage1.json", "plain", 30),
                                             ("stage2", demo / "world" / "stage2.json", "chat", 40)):
        started = time.perf_counter()
        encoder = ConversationEncoder(tokenizer, model.image_token_id, model.num_image_tokens,
                                      config.data.max_length, template)
        samples = features.prepare(encode_samples(data_file, encoder))
        timings[f"data preparation {name}"] = time.perf_counter() - started
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-3, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, stage_schedule(0.03, steps))
        batch, micro = 32, 16
        order = SampleOrder.for_stage(samples, name, config.seed, batch, config.data.length_group_batches)
        model.train()
        started = time.perf_counter()
        real = padded = 0
        for step in range(steps):
            for part in range(batch // micro):
                chosen = [samples[order[step * batch + part * micro + i]] for i in range(micro)]
                tensors = collate(chosen, tokenizer.pad_token_id)
                real, padded = real + int(tensors["attention_mask"].sum()), padded + tensors["attention_mask"].numel()
                loss = model(**tensors, features=features.get(chosen)).loss
                (loss / (batch // micro)).backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        steps_seconds += time.perf_counter() - started
        timings[f"training steps {name}"] = time.perf_counter() - started
        real_share[name] = round(real / padded, 3)
        total_steps += steps
    return {"seconds": {k: round(v, 3) for k, v in timings.items()}, "training_steps_seconds": steps_seconds,
            "steps": total_steps, "real_token_share": real_share}


def plot(trials: list[dict], path: Path) -> None:
    """One horizontal bar per trial, split into the breakdown's parts: the work (steps, probes, evaluation
    forwards) in greens, the fixed cost in the other colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 2.6 + 0.3 * len(trials)))
    colours = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (4, 5)]  # greens mean work
    for row, trial in enumerate(trials):
        left = 0.0
        for index, name in enumerate(ORDER):
            width = max(0.0, trial["breakdown"][name])
            colour = WORK_COLOURS[WORK.index(name)] if name in WORK else colours[index % len(colours)]
            axes.barh(row, width, left=left, color=colour, label=name if row == 0 else None)
            left += width
        axes.text(left + 0.5, row, f"fixed {trial['fixed_seconds']:.1f}s", va="center", fontsize=8)
    axes.set_xlim(0, 1.15 * max(t["wall_seconds"] for t in trials))
    axes.set_yticks(range(len(trials)), [f"trial {i + 1}" for i in range(len(trials))])
    axes.invert_yaxis()
    axes.set_xlabel("seconds (wall clock, from the previous trial's end)")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default="runs/demo", help="the demo's world/, encoder/ and lrs/")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/trial_overhead.json")
    args = parser.parse_args()
    demo = Path(args.demo_dir).resolve()
    missing = [p for p in ("world/stage2.json", "encoder/config.json", "lrs/lrs.json") if not (demo / p).is_file()]
    if missing:
        sys.exit(f"trial_overhead: {demo} lacks {', '.join(missing)}; run `raylayers demo` first (or give "
                 "--demo-dir)")
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        trials = search(demo, Path(tmp), args.trials)
        plain = plain_loop(demo, Path(tmp) / "cache")  # the cache the search filled: features of layer 11
        ungrouped = plain_loop(demo, Path(tmp) / "cache", length_group_batches=0)
    warm = trials[1:] or trials
    result = {"trials": trials, "plain_loop": plain, "plain_loop_ungrouped": ungrouped, "cpu_count": os.cpu_count(),
              "warm_fixed_seconds_mean": sum(t["fixed_seconds"] for t in warm) / len(warm),
              "step_time_ratio_plain_over_trial": plain["training_steps_seconds"] / (
                  sum(t["breakdown"]["training steps"] for t in warm) / len(warm))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    plot(trials, Path(args.out).with_suffix(".png"))
    print(f"\n{'seconds':<48}" + "".join(f"{'trial ' + str(i + 1):>10}" for i in range(len(trials))))
    for name in ORDER:
        print(f"{name:<48}" + "".join(f"{t['breakdown'][name]:>10.2f}" for t in trials))
    for key in ("wall_seconds", "work_seconds", "fixed_seconds"):
        print(f"{key.replace('_seconds', '').upper():<48}" + "".join(f"{t[key]:>10.2f}" for t in trials))
    print(f"\nplain in-process loop, the same {plain['steps']} steps: {plain['training_steps_seconds']:.2f}s "
          f"(trial's steps / plain: x{1 / result['step_time_ratio_plain_over_trial']:.2f}); "
          f"model build {plain['seconds']['model build']:.2f}s")
    slower = ungrouped["training_steps_seconds"] / plain["training_steps_seconds"]
    print(f"the same loop without length grouping (data.length_group_batches=0): "
          f"{ungrouped['training_steps_seconds']:.2f}s (x{slower:.2f} the grouped loop's time; per stage " + ", ".join(
              f"{k.split()[-1]} {ungrouped['seconds'][k]:.1f}s vs {plain['seconds'][k]:.1f}s"
              for k in plain["seconds"] if k.startswith("training steps")) + "); real tokens' share of the padded "
          f"batches: grouped {plain['real_token_share']}, ungrouped {ungrouped['real_token_share']}")
    print(f"fixed cost per trial after the first (mean): {result['warm_fixed_seconds_mean']:.2f}s; "
          f"written {args.out}")


if __name__ == "__main__":
    main()
