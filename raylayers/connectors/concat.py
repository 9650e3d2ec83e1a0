"""The paper's fusion: channel-concat of several layers (default: one representative per LRS group), then a projector.

Token count is unchanged; channels grow to D * k (the paper's "lightweight fusion").
"""

from __future__ import annotations

import torch

from raylayers.connectors.base import Connector, ConnectorSpec, projector
from raylayers.errors import UserError


class ConcatConnector(Connector):
    name = "concat"

    def __init__(self, spec: ConnectorSpec):
        super().__init__()
        self.layers = self.required_layers(spec.layers, spec.num_encoder_layers)
        self.proj = projector(spec.projector, spec.vision_dim * len(self.layers), spec.llm_dim)

    @classmethod
    def required_layers(cls, layers: list[int], depth: int) -> list[int]:
        if not layers:
            raise UserError("connector 'concat' needs its layers: give model.layers, or model.lrs (an lrs.json) "
                            "to take one representative per LRS group")
        return sorted(layers)

    @classmethod
    def export_refusal(cls, spec: ConnectorSpec) -> str | None:
        if spec.projector != "mlp2x_gelu":  # transformers' LLaVA concatenates listed layers, then Linear-GELU-Linear
            return "transformers' LLaVA projector is Linear-GELU-Linear; this concat uses a single linear projector"
        return None

    def project(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        fused = torch.cat([features[layer] for layer in self.layers], dim=-1)  # (B, N, D * k)
        return self.proj(fused)  # (B, N, llm_dim)
