"""MMFuser (Cao et al., 2024), in pure PyTorch: no compiled CUDA op, so it runs anywhere torch does.

The deepest selected layer is the query; the shallower selected layers (CLIP-L default: 3, 8, 13, 18, i.e.
evenly spaced from L/8 to 3L/4) are the levels of a multi-scale deformable cross-attention (Deformable DETR's
sampling scheme: per head, level and point, an offset and a weight predicted from the query; reference point =
the query's own patch cell). A single-level deformable attention over the fused map refines it. Both branches are
added through per-channel gates that start at zero, so the block starts as the identity on the deep layer, as in
MMFuser; a `mlp2x_gelu` projector follows.

`F.grid_sample` does the bilinear sampling that MMFuser's CUDA kernel does; it is slower on GPU for large maps but
exact, differentiable and portable.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raylayers.connectors.base import Connector, ConnectorSpec, deepest_and_rest, penultimate, projector
from raylayers.errors import UserError


def default_mmfuser_layers(depth: int) -> tuple[int, list[int]]:
    query = penultimate(depth)
    keys = sorted({max(1, int(round(x))) for x in np.linspace(depth / 8, 3 * depth / 4, 4)} - {query})
    return query, [layer for layer in keys if layer < query]


def query_and_levels(layers: list[int], depth: int) -> tuple[int, list[int]]:
    """The deep query layer and the shallower levels it attends to."""
    query, levels = deepest_and_rest(layers, depth, lambda d: default_mmfuser_layers(d)[1])
    if not levels:
        raise UserError(f"connector 'mmfuser' needs at least two layers (a deep query and shallower levels), "
                        f"got {layers}")
    return query, levels


class DeformableAttention(nn.Module):
    """Multi-scale deformable attention over same-size patch grids (levels), in pure PyTorch."""

    def __init__(self, dim: int, heads: int, levels: int, points: int):
        super().__init__()
        if dim % heads:
            raise UserError(f"mmfuser: vision width {dim} is not divisible by heads={heads}")
        self.heads, self.levels, self.points, self.head_dim = heads, levels, points, dim // heads
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Deformable DETR's initialisation: offsets start as rays in `heads` directions, 1..points cells long.
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.heads, dtype=torch.float32) * (2 * math.pi / self.heads)
        rays = torch.stack([angles.cos(), angles.sin()], -1)
        rays = rays / rays.abs().max(-1, keepdim=True).values
        rays = rays.view(self.heads, 1, 1, 2).repeat(1, self.levels, self.points, 1)
        rays *= torch.arange(1, self.points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(rays.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query: torch.Tensor, levels: list[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        """query (B, N, D); levels: each (B, N, D) on the same (rows, cols) grid with N = rows * cols."""
        batch, tokens, dim = query.shape
        rows, cols = grid
        heads, points, head_dim = self.heads, self.points, self.head_dim
        # Reference point of each query token: the centre of its own cell, in [0, 1] (x, y).
        ys, xs = torch.meshgrid(torch.arange(rows, device=query.device), torch.arange(cols, device=query.device),
                                indexing="ij")
        reference = torch.stack([(xs.reshape(-1) + 0.5) / cols, (ys.reshape(-1) + 0.5) / rows], -1)  # (N, 2)
        offsets = self.sampling_offsets(query).view(batch, tokens, heads, self.levels, points, 2)
        scale = torch.tensor([cols, rows], dtype=query.dtype, device=query.device)
        locations = reference.to(query.dtype)[None, :, None, None, None, :] + offsets / scale  # (B,N,H,Lv,P,2)
        weights = self.attention_weights(query).view(batch, tokens, heads, self.levels * points).softmax(-1)
        weights = weights.view(batch, tokens, heads, self.levels, points)
        output = query.new_zeros(batch * heads, head_dim, tokens)
        for level, features in enumerate(levels):
            value = self.value_proj(features).view(batch, rows, cols, heads, head_dim)
            value = value.permute(0, 3, 4, 1, 2).reshape(batch * heads, head_dim, rows, cols)
            sample_at = locations[:, :, :, level].permute(0, 2, 1, 3, 4).reshape(batch * heads, tokens, points, 2)
            sampled = F.grid_sample(value, sample_at * 2 - 1, mode="bilinear", padding_mode="zeros",
                                    align_corners=False)  # (B*H, head_dim, N, P)
            level_weights = weights[:, :, :, level].permute(0, 2, 1, 3).reshape(batch * heads, 1, tokens, points)
            output = output + (sampled * level_weights).sum(-1)  # (B*H, head_dim, N)
        output = output.view(batch, heads, head_dim, tokens).permute(0, 3, 1, 2).reshape(batch, tokens, dim)
        return self.output_proj(output)


class MMFuserConnector(Connector):
    name = "mmfuser"

    def __init__(self, spec: ConnectorSpec):
        super().__init__()
        self.query_layer, self.levels = query_and_levels(spec.layers, spec.num_encoder_layers)
        if spec.grid[0] * spec.grid[1] == 0:
            raise UserError("connector 'mmfuser' needs the encoder's patch grid")
        self.grid = tuple(spec.grid)
        dim = spec.vision_dim
        heads = int(spec.option("heads", 16 if dim % 16 == 0 and dim >= 256 else 4))
        points = int(spec.option("points", 4))
        self.query_norm = nn.LayerNorm(dim)
        self.level_norm = nn.LayerNorm(dim)
        self.cross = DeformableAttention(dim, heads, len(self.levels), points)
        self.refine_norm = nn.LayerNorm(dim)
        self.refine = DeformableAttention(dim, heads, 1, points)
        self.cross_gate = nn.Parameter(torch.zeros(dim))  # per-channel gates start closed: identity on the query
        self.refine_gate = nn.Parameter(torch.zeros(dim))
        self.proj = projector("mlp2x_gelu", dim, spec.llm_dim)

    @classmethod
    def required_layers(cls, layers: list[int], depth: int) -> list[int]:
        query, levels = query_and_levels(layers, depth)
        return [*levels, query]

    def project(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        deep = features[self.query_layer]  # (B, N, D)
        levels = [self.level_norm(features[layer]) for layer in self.levels]
        fused = deep + self.cross_gate * self.cross(self.query_norm(deep), levels, self.grid)
        normed = self.refine_norm(fused)
        fused = fused + self.refine_gate * self.refine(normed, [normed], self.grid)
        return self.proj(fused)  # (B, N, llm_dim)
