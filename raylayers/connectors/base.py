"""What every connector is built from and declares, what it returns, and the two projectors (LLaVA's `linear` and
`mlp2x_gelu`).

A connector is a `Connector` subclass. It declares, as class attributes, what callers would otherwise find out by
testing its name: `name`, `max_layers` (1 for single-layer connectors), `adds_inside_lm` (it returns additions to the
LLM's hidden states, so the model hooks the LLM's blocks), and `export_refusal` (why transformers' LLaVA cannot
express it, or None). Every connector returns a `ConnectorOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from raylayers.errors import UserError
from raylayers.layers import LayerRangeError

PROJECTORS = ("linear", "mlp2x_gelu")


@dataclass
class ConnectorSpec:
    """Everything a connector needs to know; built by the model from the config and the loaded encoder."""

    name: str
    """Connector name (a key of `raylayers.connectors.CONNECTORS`)."""
    vision_dim: int
    """Channel width D of the encoder's layers."""
    llm_dim: int
    """Embedding width of the LLM."""
    num_encoder_layers: int
    """Encoder depth L (DenseConnector and MMFuser defaults scale with it)."""
    layers: list[int] = field(default_factory=list)
    """Selected layers, positive numbers (resolved against the depth by the model, once); empty means the
    connector's default for this depth."""
    projector: str = "mlp2x_gelu"
    """`linear` or `mlp2x_gelu`, for connectors that end in a projector."""
    grid: tuple[int, int] = (0, 0)
    """Patch grid (rows, cols) of the encoder's input (MMFuser samples on it)."""
    num_llm_layers: int = 0
    """LLM depth (internal_direct maps vision layers onto it)."""
    options: dict = field(default_factory=dict)
    """Connector-specific options (e.g. `pool_stride` for dense_sti, `heads`/`points` for mmfuser)."""

    def __post_init__(self):
        outside = [layer for layer in self.layers if not 0 <= layer <= self.num_encoder_layers]
        if outside:  # negative numbers are resolved once, by the model, before a spec is made
            raise LayerRangeError(f"layer {outside[0]} requested, encoder has {self.num_encoder_layers} layers "
                                  f"(a spec takes positive numbers 0..{self.num_encoder_layers})")

    def option(self, key: str, default):
        return self.options.get(key, default)


def projector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """LLaVA's projectors: one linear map, or Linear-GELU-Linear (LLaVA-1.5's `mlp2x_gelu`)."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    raise UserError(f"unknown projector '{kind}' (valid: {', '.join(PROJECTORS)})")


@dataclass
class ConnectorOutput:
    """What every connector returns."""

    tokens: torch.Tensor
    """(B, T, llm_dim): the visual tokens, placed at the prompt's image-token positions."""
    additions: dict[int, torch.Tensor] = field(default_factory=dict)
    """LLM block index -> (B, T, llm_dim) added to the image-token hidden states at that block's input (only
    connectors with `adds_inside_lm`)."""


class Connector(nn.Module):
    """The base of every connector: what it declares, and the output it returns."""

    name: ClassVar[str]
    """Its name in `raylayers.connectors.CONNECTORS` and in configs."""
    max_layers: ClassVar[int | None] = None
    """How many encoder layers it can read (1: a single-layer connector; None: any number)."""
    adds_inside_lm: ClassVar[bool] = False
    """Whether it returns `additions` for the LLM's blocks (the model then hooks them)."""

    @classmethod
    def required_layers(cls, layers: list[int], depth: int) -> list[int]:
        """The encoder layers (positive numbers) it reads, given the selected `layers` (positive; empty: its
        default) of an encoder with `depth` blocks."""
        raise NotImplementedError

    @classmethod
    def export_refusal(cls, spec: ConnectorSpec) -> str | None:
        """Why transformers' `LlavaForConditionalGeneration` cannot express this connector; None when it can."""
        return (f"connector '{cls.name}' has no equivalent in transformers' LlavaForConditionalGeneration, which "
                "takes one layer or a channel-concat of layers into a Linear-GELU-Linear projector")

    def num_tokens(self, num_patches: int) -> int:
        """Visual tokens it emits for an image of `num_patches` patches."""
        return num_patches

    def project(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        """{layer: (B, N, D)} -> visual tokens (B, T, llm_dim)."""
        raise NotImplementedError

    def forward(self, features: dict[int, torch.Tensor]) -> ConnectorOutput:
        return ConnectorOutput(self.project(features))


def deepest_and_rest(layers: list[int], depth: int, default_rest) -> tuple[int, list[int]]:
    """(base, extras) for connectors built around one deep layer: the deepest selected layer and the others,
    shallow to deep; with no layers selected, the penultimate and `default_rest(depth)`."""
    if layers:
        base = max(layers)
        return base, sorted(layer for layer in layers if layer != base)
    base = penultimate(depth)
    return base, sorted(set(default_rest(depth)) - {base})


def penultimate(num_layers: int) -> int:
    """LLaVA's default layer, "-2", as a positive number (the one owner of this fact)."""
    return max(1, num_layers - 1)
