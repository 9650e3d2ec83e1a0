"""How the layer similarity (LRS) is computed (`raylayers lrs`, and a search that computes it first)."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, field_validator

from raylayers.config.base import Section


class LRSOptions(Section):
    """Layer-by-layer similarity of a vision encoder and its groups."""

    metric: Literal["cosine", "cka"] = "cosine"
    """`cosine` (the paper's: per-token cosine between layers, averaged) or `cka` (linear CKA)."""
    groups: int | Literal["auto"] = "auto"
    """Number of contiguous layer groups, or `auto` (the best mean silhouette over 2..min(L-1, 10))."""
    max_images: PositiveInt | None = 256
    """Use at most this many images (the matrix settles within a few hundred; more costs forward passes only)."""
    batch_size: PositiveInt = 16
    """Images per forward pass."""

    @field_validator("groups")
    @classmethod
    def _at_least_one(cls, value):
        if value != "auto" and value < 1:
            raise ValueError(f"groups must be at least 1 or auto, got {value}")
        return value
