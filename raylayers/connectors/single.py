"""One layer, one projector: the paper's single-layer runs (`linear`) and LLaVA-1.5 (`mlp2x_gelu`)."""

from __future__ import annotations

import torch

from raylayers.connectors.base import Connector, ConnectorSpec, penultimate, projector
from raylayers.errors import UserError


class _SingleLayer(Connector):
    max_layers = 1

    def __init__(self, spec: ConnectorSpec):
        super().__init__()
        (self.layer,) = self.required_layers(spec.layers, spec.num_encoder_layers)
        self.proj = projector(self.name, spec.vision_dim, spec.llm_dim)

    @classmethod
    def required_layers(cls, layers: list[int], depth: int) -> list[int]:
        layers = layers or [penultimate(depth)]
        if len(layers) != 1:
            raise UserError(f"connector '{cls.name}' takes exactly one layer, got {layers} "
                            "(use 'concat' or another fusion connector for several)")
        return list(layers)

    def project(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        return self.proj(features[self.layer])  # (B, N, D) -> (B, N, llm_dim)


class LinearConnector(_SingleLayer):
    name = "linear"


class MLPConnector(_SingleLayer):
    name = "mlp2x_gelu"

    @classmethod
    def export_refusal(cls, spec: ConnectorSpec) -> str | None:
        return None  # transformers' LLaVA projector is exactly Linear-GELU-Linear on one layer
