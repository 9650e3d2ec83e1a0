"""Layer numbering, in one place (ARCHITECTURE.md, "Conventions").

"Layer i" (1 <= i <= L) is the output of transformer block i, i.e. `hidden_states[i]` of a transformers vision model;
layer 0 is the embedding output `hidden_states[0]`. A negative number counts from the end like a Python index on
the blocks: -1 is layer L, -2 is layer L-1 (LLaVA's usual "-2"), -L is layer 1. Everything the program writes uses
the positive numbers these functions return.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from raylayers.errors import UserError


class LayerRangeError(UserError, ValueError):
    """A layer number outside the encoder's depth."""


def valid_range(num_layers: int) -> str:
    """The accepted numbers for an encoder of `num_layers` blocks, as the error messages state them."""
    return f"0..{num_layers} or -{num_layers}..-1"


def resolve_layer(layer: int, num_layers: int) -> int:
    """Map a layer number (positive, 0 or negative) to its positive number in 0..num_layers."""
    if num_layers < 1:
        raise ValueError(f"an encoder needs at least one layer, got num_layers={num_layers}")
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise LayerRangeError(f"layer {layer!r} is not an integer (valid: {valid_range(num_layers)})")
    if -num_layers <= layer < 0:
        return num_layers + 1 + layer
    if 0 <= layer <= num_layers:
        return layer
    raise LayerRangeError(
        f"layer {layer} requested, encoder has {num_layers} layers (valid: {valid_range(num_layers)})"
    )


def resolve_layers(layers: Iterable[int], num_layers: int) -> list[int]:
    """Resolve several layer numbers; order is kept, duplicates (after resolving) are dropped."""
    resolved: list[int] = []
    for layer in layers:
        positive = resolve_layer(layer, num_layers)
        if positive not in resolved:
            resolved.append(positive)
    if not resolved:
        raise LayerRangeError("no layers selected")
    return resolved


# "a..b" (either end may be negative) or "a-b" (both non-negative; "-2" alone is a single negative layer).
_RANGE = re.compile(r"^(-?\d+)\s*\.\.\s*(-?\d+)$|^(\d+)\s*-\s*(\d+)$")


def parse_layer_spec(spec: str) -> list[int]:
    """Parse "3,18,-2", "1-12" or "-4..-1" into layer numbers (not yet resolved against a depth)."""
    layers: list[int] = []
    for part in (p.strip() for p in str(spec).split(",")):
        if not part:
            continue
        match = _RANGE.match(part)
        if match:
            bounds = [int(g) for g in match.groups() if g is not None]
            if bounds[1] < bounds[0]:
                raise LayerRangeError(f"layer range '{part}' in '{spec}' runs backwards")
            layers.extend(range(bounds[0], bounds[1] + 1))
        elif re.fullmatch(r"-?\d+", part):
            layers.append(int(part))
        else:
            raise LayerRangeError(f"'{part}' in layer list '{spec}' is not a layer number or range")
    if not layers:
        raise LayerRangeError(f"layer list '{spec}' names no layers")
    return layers
