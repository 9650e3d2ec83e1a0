"""The paper's fusion: channel-concat of several layers (default: one representative per LRS group), then a projector.

Token count is unchanged; channels grow to D * k (the paper's "lightweight fusion").
"""

from __future__ import annotations

import torch
from torch import nn

from raylayers.connectors.base import ConnectorSpec, projector
from raylayers.errors import UserError


class ConcatConnector(nn.Module):
    def __init__(self, spec: ConnectorSpec):
        super().__init__()
        self.layers = self.required_layers(spec)
        self.proj = projector(spec.projector, spec.vision_dim * len(self.layers), spec.llm_dim)

    @staticmethod
    def required_layers(spec: ConnectorSpec) -> list[int]:
        layers = spec.resolved_layers()
        if not layers:
            raise UserError("connector 'concat' needs its layers: give model.layers, or model.lrs (an lrs.json) "
                            "to take one representative per LRS group")
        return sorted(layers)

    def num_tokens(self, num_patches: int) -> int:
        return num_patches

    def forward(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        fused = torch.cat([features[layer] for layer in self.layers], dim=-1)  # (B, N, D * k)
        return self.proj(fused)  # (B, N, llm_dim)
