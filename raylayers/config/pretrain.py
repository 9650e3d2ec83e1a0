"""`raylayers pretrain-encoder`: the offline CLIP and the LM config that comes with it, one preset per world scale.

`pretrain_config(scale, **overrides)` is the one place a preset is chosen and changed; an unknown setting is an
error that names it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from raylayers.config.base import Section, validate


class PretrainConfig(Section):
    """Settings for the offline CLIP and its LM config; every default lives here."""

    model_config = ConfigDict(frozen=True)

    vision_layers: PositiveInt = 12
    """Vision transformer blocks (12 gives LRS structure to find)."""
    vision_width: PositiveInt = 96
    """Vision hidden size."""
    vision_heads: PositiveInt = 4
    """Vision attention heads."""
    patch_size: PositiveInt = 8
    """Patch size in pixels; the image size comes from the world."""
    text_layers: PositiveInt = 3
    """Text transformer blocks."""
    text_width: PositiveInt = 96
    """Text hidden size."""
    text_heads: PositiveInt = 4
    """Text attention heads."""
    projection_dim: PositiveInt = 64
    """Shared image-text embedding size."""
    max_text_tokens: PositiveInt = 64
    """Captions longer than this are truncated."""
    batch_size: PositiveInt = 128
    """Image-caption pairs per contrastive batch."""
    learning_rate: PositiveFloat = 1e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay)."""
    weight_decay: NonNegativeFloat = 0.05
    """AdamW weight decay."""
    epochs: PositiveInt = 40
    """Passes over the training captions (stops earlier when `max_seconds` runs out)."""
    max_seconds: PositiveFloat = 270.0
    """Wall-clock budget for the training loop."""
    max_steps: PositiveInt | None = None
    """Stop after this many optimiser steps. The learning-rate schedule then follows steps only, so the run does not
    depend on the machine's speed (`max_seconds` stays a safety cap); unset, it follows steps or seconds, whichever
    runs out first."""
    seed: int = 0
    """Seed for initialisation and batch order."""
    lm_layers: PositiveInt = 4
    """Blocks of the small Llama LM config written to lm/."""
    lm_width: PositiveInt = 128
    """Hidden size of the small Llama LM."""
    lm_heads: PositiveInt = 4
    """Attention heads of the small Llama LM."""


# Presets by world scale: tests run the tiny one in seconds.
PRESETS = {
    "tiny": PretrainConfig(vision_layers=4, vision_width=32, vision_heads=4, text_layers=2, text_width=32,
                           projection_dim=32, batch_size=16, epochs=4, max_seconds=60.0, lm_layers=2, lm_width=32),
    "demo": PretrainConfig(),
    "full": PretrainConfig(vision_width=128, text_width=128, epochs=30, max_seconds=1800.0),
}


def pretrain_config(scale: str | None = None, **overrides) -> PretrainConfig:
    """The preset of a world scale (the demo preset for an unknown one), with `overrides` (None values ignored)."""
    return _preset(PRESETS, scale, overrides, "pretrain settings")


def _preset(presets: dict, scale: str | None, overrides: dict, where: str):
    preset = presets.get(scale, presets["demo"])
    changes = {key: value for key, value in overrides.items() if value is not None}
    return validate(type(preset), {**preset.model_dump(), **changes}, where) if changes else preset


class PretrainLMConfig(Section):
    """Settings for teaching the world's LM to read (`raylayers pretrain-world`, `raylayers.pretrain.lm`)."""

    model_config = ConfigDict(frozen=True)

    steps: PositiveInt = 7000
    """Optimiser steps (the schedule follows steps; `max_seconds` is a safety cap). The best LM so far took 7000
    steps in two runs (README, "An LM that reads"). These defaults as one run did worse: 0.509 overall at step
    7000 (2 threads, 0.4 s a step), against 0.75 for the two-run path; which difference matters is open."""
    batch_size: PositiveInt = 32
    """Text records per step."""
    learning_rate: PositiveFloat = 5e-4
    """Peak AdamW learning rate (linear warm-up over `warmup_steps`, cosine decay to a tenth). At 2e-3 the option
    drills stayed at the answer prior for 1200 steps; at 5e-4 they are learned (README, "An LM that reads")."""
    warmup_steps: PositiveInt = 100
    """Linear warm-up steps."""
    weight_decay: NonNegativeFloat = 0.01
    """AdamW weight decay."""
    copy_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.25
    """Share of copy records (the caption as context, then the caption again) among the QA records."""
    direct_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    """Share of multiple-choice training questions asked short-answer, answered with the option's text."""
    drill_steps: NonNegativeInt = 1500
    """The first steps train on option drills only (a multiple-choice question led by "It is <the right option>.",
    no caption: which letter goes with which option), then on the world's text. Without them the 4-layer LM stays
    at the answer prior on multiple choice with the caption (2300 steps); after 1200 drill steps it answers the
    attribute questions at 0.77-0.80 within 200 steps. Drills of the four multiple-choice tasks at once take
    longer from random weights: 0.32 at 1500 steps (the prior), 0.61 at 3000, 0.84 at 4500."""
    drill_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.25
    """Share of each batch that stays option drills after the first `drill_steps`. Without them the mixture
    unlearned the hop (held-out drills 0.28 at step 4000, the prior); with a quarter of each batch, the same LM's
    drills went to 0.86 and its multiple-choice tasks off their priors within 1250 steps."""
    scene_drill_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """Share of the drills (`drill_steps`, `drill_fraction`) that are scene drills instead of option drills: a
    question of attributes, position, relation or localize in its benchmark format after a caption that lists only
    the objects it names. Continuing a 0.752 LM for 2500 steps with `drill_fraction` 0.375 and this at 0.5 gave 0.801
    (localize 0.41 to 0.54, count 0.91 to 1.00; relation stayed at its prior); not yet run from scratch, so off by
    default (README, "An LM that reads")."""
    length_group_steps: PositiveInt = 8
    """Steps whose records are drawn together and batched longest first (LLaVA's length-grouped sampling), so a
    batch pads to lengths like its own; 1: each step pads its own random records (over half of each batch was
    padding)."""
    loss_on: Literal["text", "answers", "both"] = "both"
    """Which tokens the loss covers: every token of a record ("text": plain language modelling, as an LLM is
    pretrained), the answers only ("answers": as the stages train), or the answers' mean plus the text's mean
    ("both": the few answer tokens keep their weight next to the caption's many). With "answers" the 4-layer LM
    never learned to say an option's letter (the letter sits before the option's text, and nothing teaches a text
    position which letter it belongs to); with "text" it does, but on the seven-task mixture every task stayed at
    its prior (2000 steps), while "both" made the short-answer tasks read (README, "An LM that reads")."""
    max_seconds: PositiveFloat = 7200.0
    """Wall-clock cap on the training loop."""
    eval_every: PositiveInt = 500
    """Steps between held-out text-QA evaluations (and one at the end)."""
    seed: int = 0
    """Seed of the initialisation and of the text corpus's scenes (held-out questions use seed + 1)."""
    init_from: str | None = None
    """An LM folder whose weights (`save_pretrained`, the same tokenizer) the run starts from instead of random
    ones: a run continued from an earlier one's result, as an LLM is trained further from a published checkpoint
    (`raylayers pretrain-world --lm-from`). The schedule starts afresh."""


LM_PRESETS = {
    "tiny": PretrainLMConfig(steps=30, batch_size=8, warmup_steps=5, eval_every=30, max_seconds=120.0,
                             drill_steps=10),
    "demo": PretrainLMConfig(),
    "full": PretrainLMConfig(steps=8000),
}


def pretrain_lm_config(scale: str | None = None, **overrides) -> PretrainLMConfig:
    """The LM preset of a world scale (the demo preset for an unknown one), with `overrides` (None values ignored)."""
    return _preset(LM_PRESETS, scale, overrides, "pretrain-lm settings")
