"""Learning-rate schedules: linear warm-up and cosine decay, the two shapes every loop in raylayers is built from.

A LLaVA training stage (`stage_schedule`) warms up linearly over `warmup_ratio` of its steps, then decays with a
cosine over the rest, as LLaVA's recipe does. The offline CLIP's pretraining (`raylayers.pretrain.encoder.lr_schedule`)
multiplies the same two shapes, with a cosine that can follow a time budget.
"""

from __future__ import annotations

import math


def linear_warmup(step: int, warmup_steps: int) -> float:
    """(step + 1) / warmup_steps, capped at 1 (step is 0-based)."""
    return min(1.0, (step + 1) / warmup_steps)


def cosine_decay(progress: float) -> float:
    """0.5 (1 + cos(pi p)) for p = min(1, progress): 1 at the start, 0 at the end."""
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_steps(warmup_ratio: float, total_steps: int) -> int:
    """The warm-up steps of a training stage: ceil(warmup_ratio x total_steps), at least 1."""
    return max(1, math.ceil(warmup_ratio * total_steps))


def stage_schedule(warmup_ratio: float, total_steps: int):
    """step -> learning-rate multiplier of a training stage (a `LambdaLR` function): warm-up over
    `warmup_steps` steps, then the cosine over the remaining steps."""
    warmup = warmup_steps(warmup_ratio, total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return linear_warmup(step, warmup)
        return cosine_decay((step - warmup) / max(1, total_steps - warmup))

    return factor
