"""The DeepSpeed config of a stage: the shipped ZeRO JSON (or the user's) with every "auto" filled from the recipe.

`raylayers/configs/deepspeed/zero<stage>.json` holds what does not depend on the run; batch sizes, gradient
accumulation, precision and the ZeRO-3 bucket sizes are filled here, so one recipe key changes them everywhere.
"""

from __future__ import annotations

import json
from importlib import resources

from raylayers.config import StageConfig, TrainConfig
from raylayers.errors import UserError


def deepspeed_config(config: TrainConfig, stage: StageConfig, world_size: int, use_gpu: bool,
                     hidden_size: int) -> dict:
    """The shipped (or user's) ZeRO JSON with every "auto" filled from the TrainConfig."""
    if config.deepspeed.config:
        from raylayers.files import read_user_json

        base = read_user_json(config.deepspeed.config, "DeepSpeed config")
        if not isinstance(base, dict):
            raise UserError(f"DeepSpeed config '{config.deepspeed.config}' must hold a JSON object")
    else:
        base = json.loads(resources.files("raylayers.configs.deepspeed").joinpath(
            f"zero{effective_zero_stage(config, world_size)}.json").read_text())
    precision = config.precision if config.precision != "auto" else ("bf16" if use_gpu else "fp32")
    accumulation = stage.global_batch_size // (stage.micro_batch_size * world_size)
    filled = {
        "train_batch_size": stage.global_batch_size,
        "train_micro_batch_size_per_gpu": stage.micro_batch_size,
        "gradient_accumulation_steps": accumulation,
    }
    base.update(filled)
    base.setdefault("bf16", {})["enabled"] = precision == "bf16"
    base.setdefault("fp16", {})["enabled"] = precision == "fp16"
    zero = base.setdefault("zero_optimization", {})
    for key, value in (("stage3_prefetch_bucket_size", int(0.9 * hidden_size * hidden_size)),
                       ("stage3_param_persistence_threshold", 10 * hidden_size)):
        if zero.get(key) == "auto":
            zero[key] = value
    leftover = [key for key, value in walk(base) if value == "auto"]
    if leftover:
        raise UserError(f"DeepSpeed config: cannot fill 'auto' for {', '.join(leftover)}")
    return base


def effective_zero_stage(config: TrainConfig, world_size: int) -> int:
    """The ZeRO stage of the shipped JSON a run uses: the configured one, except ZeRO 1/2 on a single rank, which
    partitions over one rank (no memory saved, only bookkeeping) and runs as stage 0 unless
    `deepspeed.partition_one_rank`. A user's own JSON (`deepspeed.config`) is used as it is."""
    stage = config.deepspeed.zero_stage
    if world_size == 1 and stage in (1, 2) and not config.deepspeed.partition_one_rank and not config.deepspeed.config:
        return 0
    return stage


def walk(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from walk(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def keeps_gradient_norm(engine) -> bool:
    """Whether DeepSpeed records each step's gradient norm (`get_global_grad_norm`): its ZeRO and mixed-precision
    optimizers do. On the plain fp32 path (ZeRO-0, a CPU run on one rank) it clips the gradients and keeps no norm,
    so `get_global_grad_norm()` is None at every step."""
    return hasattr(engine.optimizer, "_global_grad_norm")


def gradient_norm(parameters) -> float:
    """The L2 norm of the gradients `parameters` hold (after the boundary's all-reduce, before DeepSpeed clips)."""
    import torch

    grads = [p.grad for p in parameters if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
