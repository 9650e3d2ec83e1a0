"""What every connector is built from, and the two projectors (LLaVA's `linear` and `mlp2x_gelu`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from raylayers.errors import UserError
from raylayers.layers import resolve_layers

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
    """Selected layers, positive numbers; empty means the connector's default for this depth."""
    projector: str = "mlp2x_gelu"
    """`linear` or `mlp2x_gelu`, for connectors that end in a projector."""
    grid: tuple[int, int] = (0, 0)
    """Patch grid (rows, cols) of the encoder's input (MMFuser samples on it)."""
    num_llm_layers: int = 0
    """LLM depth (internal_direct maps vision layers onto it)."""
    options: dict = field(default_factory=dict)
    """Connector-specific options (e.g. `pool_stride` for dense_sti, `heads`/`points` for mmfuser)."""

    def resolved_layers(self) -> list[int]:
        return resolve_layers(self.layers, self.num_encoder_layers) if self.layers else []

    def option(self, key: str, default):
        return self.options.get(key, default)


def projector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """LLaVA's projectors: one linear map, or Linear-GELU-Linear (LLaVA-1.5's `mlp2x_gelu`)."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    raise UserError(f"unknown projector '{kind}' (valid: {', '.join(PROJECTORS)})")


def deepest_and_rest(spec: ConnectorSpec, default_rest) -> tuple[int, list[int]]:
    """(base, extras) for connectors built around one deep layer: the deepest selected layer and the others,
    shallow to deep; with no layers selected, the penultimate and `default_rest(depth)`."""
    layers = spec.resolved_layers()
    if layers:
        base = max(layers)
        return base, sorted(layer for layer in layers if layer != base)
    base = penultimate(spec.num_encoder_layers)
    return base, sorted(set(default_rest(spec.num_encoder_layers)) - {base})


def penultimate(num_layers: int) -> int:
    """LLaVA's default layer, "-2", as a positive number."""
    return max(1, num_layers - 1)
