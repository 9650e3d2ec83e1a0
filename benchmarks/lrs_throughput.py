"""LRS throughput and peak memory on a CLIP-L-shaped random encoder, against a naive baseline in the same run.

    .venv/bin/python benchmarks/lrs_throughput.py                 # 24 layers, width 1024, patch 14, 224 px, 256 images
    .venv/bin/python benchmarks/lrs_throughput.py --images 32      # quick look

raylayers: `compute_lrs` (streaming running sums over batches; memory independent of the number of images).
baseline:  what a notebook does: `output_hidden_states=True`, keep every layer of every image, then one big
           cosine matrix at the end (memory grows with the number of images).
Each runs in its own process so peak RSS (ru_maxrss) is its own. Figures go to the README with this command.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_encoder(folder: Path, image_size: int, layers: int, width: int) -> None:
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                              num_attention_heads=max(1, width // 64), image_size=image_size, patch_size=14)
    CLIPVisionModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": image_size},
                       crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)


def write_images(folder: Path, count: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{index:04d}.png")


def run_raylayers(encoder: Path, images: Path, batch_size: int) -> dict:
    from raylayers.encoders import VisionTower
    from raylayers.lrs import compute_lrs

    tower = VisionTower.from_pretrained(encoder)
    started = time.perf_counter()
    result = compute_lrs(tower, images, batch_size=batch_size, num_groups=3, progress=False)
    return {"seconds": time.perf_counter() - started, "num_images": result.num_images,
            "groups": [g.layers for g in result.groups], "matrix_00_01": float(result.matrix[0, 1])}


def run_baseline(encoder: Path, images: Path, batch_size: int) -> dict:
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionModel

    model = CLIPVisionModel.from_pretrained(encoder).eval()
    processor = CLIPImageProcessor.from_pretrained(encoder)
    paths = sorted(images.iterdir())
    started = time.perf_counter()
    kept = []  # every layer of every image, as a notebook would keep them
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            batch = [Image.open(p).convert("RGB") for p in paths[start:start + batch_size]]
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
            hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states[1:]
            kept.append(torch.stack([h[:, 1:] for h in hidden]))  # (L, B, T, D), CLS dropped
        everything = torch.nn.functional.normalize(torch.cat(kept, dim=1), dim=-1)  # (L, N, T, D)
        flat = everything.reshape(everything.shape[0], -1)
        matrix = flat @ flat.T / (everything.shape[1] * everything.shape[2])
    return {"seconds": time.perf_counter() - started, "num_images": len(paths),
            "matrix_00_01": float(matrix[0, 1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--mode", choices=["raylayers", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.mode:  # child process: one measurement
        workdir = Path(args.workdir)
        run = run_raylayers if args.mode == "raylayers" else run_baseline
        result = run(workdir / "encoder", workdir / "images", args.batch_size)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        build_encoder(workdir / "encoder", args.image_size, args.layers, args.width)
        write_images(workdir / "images", args.images, args.image_size)
        results = {}
        for mode in ("baseline", "raylayers"):
            command = [sys.executable, __file__, "--mode", mode, "--workdir", tmp,
                       "--batch-size", str(args.batch_size)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[mode] = json.loads(output.strip().splitlines()[-1])
            results[mode]["images_per_second"] = results[mode]["num_images"] / results[mode]["seconds"]
            print(f"{mode:>10}: {results[mode]['images_per_second']:.2f} img/s, "
                  f"peak RSS {results[mode]['peak_rss_mib']:.0f} MiB", flush=True)
    ours, base = results["raylayers"], results["baseline"]
    summary = {
        "encoder": f"CLIP-L-shaped random: {args.layers} layers, width {args.width}, patch 14, {args.image_size}px",
        "images": args.images, "batch_size": args.batch_size, "torch_threads": torch.get_num_threads(),
        "raylayers": ours, "baseline": base,
        "throughput_ratio": ours["images_per_second"] / base["images_per_second"],
        "peak_memory_ratio": ours["peak_rss_mib"] / base["peak_rss_mib"],
        "same_matrix": abs(ours["matrix_00_01"] - base["matrix_00_01"]) < 1e-4,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
