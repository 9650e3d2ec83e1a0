"""Training-step throughput: raylayers' step (LlavaLayers in a DeepSpeed engine) vs a plain single-process
transformers `LlavaForConditionalGeneration` step of the same sizes, measured in the same run.

    .venv/bin/python benchmarks/train_throughput.py                       # CPU, demo scale (needs runs/demo)
    .venv/bin/python benchmarks/train_throughput.py --scale clip-l-1.4b   # one GPU: CLIP-L/336 + 1.4B Llama, random

Both sides train the projector and the LM (stage 2), the tower frozen, with AdamW; same batch, same sequence
length, same image. raylayers runs three ways: tower on the fly, features from the frozen-feature cache (the tower
skipped, as in a real run after the first epoch), and the plain transformers baseline. Figures: samples/s,
tokens/s, ratios against the baseline, and on GPU the model FLOPs utilisation (6 N tokens per step for the trained
parameters N plus 2 N_tower per image token for the frozen tower's forward, over the GPU's bf16 dense peak).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def build_sizes(scale: str, demo_dir: Path):
    """(vision config, text config, image size, patch size, sequence text tokens) for the scale."""
    from transformers import CLIPVisionConfig, LlamaConfig

    if scale == "demo":
        encoder = json.loads((demo_dir / "encoder" / "config.json").read_text())["vision_config"]
        lm = json.loads((demo_dir / "encoder" / "lm" / "config.json").read_text())
        vision = CLIPVisionConfig(**{k: encoder[k] for k in ("hidden_size", "intermediate_size",
                                                             "num_hidden_layers", "num_attention_heads",
                                                             "image_size", "patch_size")})
        text = LlamaConfig(**{k: lm[k] for k in ("vocab_size", "hidden_size", "intermediate_size",
                                                 "num_hidden_layers", "num_attention_heads",
                                                 "num_key_value_heads", "tie_word_embeddings")})
        return vision, text, 48
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, image_size=336, patch_size=14)
    text = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                       num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=2048)
    return vision, text, 128


def save_stack(vision, text, folder: Path) -> None:
    """A random encoder + LM + tokenizer folder pair, so both sides load the same sizes from disk."""
    from transformers import CLIPImageProcessor, CLIPVisionModel, LlamaForCausalLM

    from raylayers.tokenizer import train_world_tokenizer

    CLIPVisionModel(vision).save_pretrained(folder / "encoder")
    CLIPImageProcessor(size={"shortest_edge": vision.image_size},
                       crop_size={"height": vision.image_size, "width": vision.image_size}
                       ).save_pretrained(folder / "encoder")
    tokenizer = train_world_tokenizer(["a red circle at the top left"] * 4)
    text.vocab_size = max(text.vocab_size, len(tokenizer))
    text.save_pretrained(folder / "lm")
    tokenizer.save_pretrained(folder / "lm")
    del LlamaForCausalLM


def interleaved(steps: dict, warmup: int, per_round: int, rounds: int, sync) -> dict:
    """Seconds per step of each named step function: after `warmup` steps each, `rounds` rounds in which every
    function runs `per_round` steps in turn; the median round of each. Interleaving keeps a slow spell of the
    machine (another process, the CPU's clock) from landing on one side only."""
    import statistics

    for step in steps.values():
        for _ in range(warmup):
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(per_round):
                step()
            sync()
            times[name].append((time.perf_counter() - started) / per_round)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["demo", "clip-l-1.4b"], default="demo")
    parser.add_argument("--demo-dir", default="runs/demo", help="where `raylayers demo` wrote encoder/ (demo scale)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the median round counts)")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    import tempfile

    use_gpu = torch.cuda.is_available()
    device = torch.device("cuda" if use_gpu else "cpu")
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if use_gpu else "cpu")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT", "29533"),
                      RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    import deepspeed
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    from raylayers.config import ModelConfig, TrainConfig
    from raylayers.data import ConversationEncoder
    from raylayers.encoders import quiet_transformers
    from raylayers.model import LlavaLayers, load_tokenizer
    from raylayers.train import deepspeed_config

    quiet_transformers()
    dtype = torch.bfloat16 if use_gpu else torch.float32
    vision, text, text_tokens = build_sizes(args.scale, Path(args.demo_dir))
    results: dict = {"scale": args.scale, "device": torch.cuda.get_device_name() if use_gpu else "cpu",
                     "threads": torch.get_num_threads(), "batch": args.batch, "steps": args.steps,
                     "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_stack(vision, text, folder)
        tokenizer = load_tokenizer(str(folder / "lm"))
        model_config = ModelConfig(encoder=str(folder / "encoder"), lm=str(folder / "lm"),
                                   connector="mlp2x_gelu", layers=[-2])
        ours = LlavaLayers.build(model_config, tokenizer).to(device)
        ours.lm.requires_grad_(True)
        num_image_tokens = ours.num_image_tokens
        encoder = ConversationEncoder(tokenizer, ours.image_token_id, num_image_tokens, 8192, "chat")
        ids = encoder.prompt("a red circle at the top left " * (text_tokens // 8))
        sequence = len(ids)
        input_ids = torch.tensor([ids] * args.batch, device=device)
        labels = input_ids.clone()
        labels[input_ids == ours.image_token_id] = -100
        pixels = torch.randn(args.batch, 3, vision.image_size, vision.image_size, device=device)
        results.update(sequence_length=sequence, image_tokens=num_image_tokens)

        # ---- raylayers: LlavaLayers inside a DeepSpeed engine, the recipe's default ZeRO-2 (one process: it runs
        # as stage 0, `deepspeed.partition_one_rank`)
        train_config = TrainConfig.model_validate({"model": {"encoder": "e", "lm": "l"},
                                                   "data": {"stage1": "a", "stage2": "b"},
                                                   "stage2": {"global_batch_size": args.batch,
                                                              "micro_batch_size": args.batch, "train_lm": True}})
        ds_config = deepspeed_config(train_config, train_config.stage2, 1, use_gpu, text.hidden_size)
        trainable = [p for p in ours.parameters() if p.requires_grad]
        engine, *_ = deepspeed.initialize(model=ours, optimizer=torch.optim.AdamW(trainable, lr=1e-5),
                                          config=ds_config)
        cached = {k: v.to(dtype) for k, v in ours.image_features(pixels.to(ours.tower.dtype)).items()}

        def our_step(use_cache: bool):
            features = cached if use_cache else {k: v.to(dtype) for k, v in
                                                 ours.image_features(pixels.to(ours.tower.dtype)).items()}
            loss = engine(input_ids=input_ids, labels=labels, features=features).loss
            engine.backward(loss)
            engine.step()

        sync = torch.cuda.synchronize if use_gpu else (lambda: None)
        trained_parameters = sum(p.numel() for p in trainable)
        tower_parameters = sum(p.numel() for p in ours.tower.parameters())
        results["zero_stage"] = ds_config["zero_optimization"]["stage"]

        # ---- baseline: plain transformers LlavaForConditionalGeneration, torch AdamW, no DeepSpeed
        config = LlavaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(),
                             image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                             vision_feature_layer=-2, vision_feature_select_strategy="default",
                             image_seq_length=num_image_tokens)
        baseline = LlavaForConditionalGeneration(config).to(device=device, dtype=dtype)
        baseline.model.vision_tower.requires_grad_(False)
        optimizer = torch.optim.AdamW([p for p in baseline.parameters() if p.requires_grad], lr=1e-5)
        pixels_baseline = pixels.to(dtype)

        def baseline_step():
            loss = baseline(input_ids=input_ids, pixel_values=pixels_baseline, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(baseline.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds = interleaved({"raylayers (tower on the fly)": lambda: our_step(False),
                               "raylayers (feature cache)": lambda: our_step(True),
                               "transformers LlavaForConditionalGeneration": baseline_step},
                              args.warmup, args.steps, args.rounds, sync)

    base = seconds["transformers LlavaForConditionalGeneration"]
    results["runs"] = {}
    for name, value in seconds.items():
        entry = {"seconds_per_step": value, "samples_per_s": args.batch / value,
                 "tokens_per_s": args.batch * sequence / value, "ratio_vs_baseline": base / value}
        if use_gpu:
            name_key = next((k for k in PEAK_BF16_TFLOPS if k in results["device"]), None)
            tokens = args.batch * sequence
            flops = 6 * trained_parameters * tokens
            if "cache" not in name:
                flops += 2 * tower_parameters * args.batch * (num_image_tokens + 1)
            if name_key:
                entry["mfu"] = flops / value / (PEAK_BF16_TFLOPS[name_key] * 1e12)
        results["runs"][name] = entry
        print(f"{name:>45}: {entry['samples_per_s']:8.2f} samples/s {entry['tokens_per_s']:10.0f} tokens/s "
              f"x{entry['ratio_vs_baseline']:.2f}" + (f"  MFU {entry['mfu']:.1%}" if "mfu" in entry else ""),
              flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
