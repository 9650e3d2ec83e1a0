"""One layer, one projector: the paper's single-layer runs (`linear`) and LLaVA-1.5 (`mlp2x_gelu`)."""

from __future__ import annotations

import torch
from torch import nn

from raylayers.connectors.base import ConnectorSpec, penultimate, projector
from raylayers.errors import UserError


class _SingleLayer(nn.Module):
    kind = "linear"

    def __init__(self, spec: ConnectorSpec):
        super().__init__()
        (self.layer,) = self.required_layers(spec)
        self.proj = projector(self.kind, spec.vision_dim, spec.llm_dim)

    @classmethod
    def required_layers(cls, spec: ConnectorSpec) -> list[int]:
        layers = spec.resolved_layers() or [penultimate(spec.num_encoder_layers)]
        if len(layers) != 1:
            raise UserError(f"connector '{spec.name}' takes exactly one layer, got {layers} "
                            "(use 'concat' or another fusion connector for several)")
        return layers

    def num_tokens(self, num_patches: int) -> int:
        return num_patches

    def forward(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        return self.proj(features[self.layer])  # (B, N, D) -> (B, N, llm_dim)


class LinearConnector(_SingleLayer):
    kind = "linear"


class MLPConnector(_SingleLayer):
    kind = "mlp2x_gelu"
