"""ELMo-style scalar mix (Peters et al., 2018): a learned softmax-weighted sum of layers, scaled by gamma.

Default layers: all of them (1..L). Weights start uniform, so the mix starts as the mean of the layers.
"""

from __future__ import annotations

import torch
from torch import nn

from raylayers.connectors.base import Connector, ConnectorSpec, projector


class ScalarMixConnector(Connector):
    name = "scalar_mix"

    def __init__(self, spec: ConnectorSpec):
        super().__init__()
        self.layers = self.required_layers(spec.layers, spec.num_encoder_layers)
        self.weights = nn.Parameter(torch.zeros(len(self.layers)))
        self.gamma = nn.Parameter(torch.ones(1))  # shape (1,): DeepSpeed cannot broadcast 0-dim parameters
        self.proj = projector(spec.projector, spec.vision_dim, spec.llm_dim)

    @classmethod
    def required_layers(cls, layers: list[int], depth: int) -> list[int]:
        return sorted(layers or range(1, depth + 1))

    def mixing_weights(self) -> torch.Tensor:
        return torch.softmax(self.weights, dim=0)

    def project(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack([features[layer] for layer in self.layers])  # (k, B, N, D)
        mixed = self.gamma * torch.einsum("k,kbnd->bnd", self.mixing_weights().to(stacked.dtype), stacked)
        return self.proj(mixed)  # (B, N, llm_dim)
