"""Internal direct fusion (the CVPR 2025 sister paper, arXiv 2503.06063): the base layer enters the LLM as tokens;
every extra layer goes through its own MLP and is added to the image-token hidden states at the proportionally
mapped LLM layer: vision layer l of L is added at the input of LLM block floor(l / L * M), M the LLM depth.

Default: base = the deepest selected layer (the penultimate when none is given), extras = the other selected layers,
or layers round(L/4) and round(L/2) by default. The extra MLPs end in a zero-initialised linear, so training starts
from the plain single-layer model.
"""

from __future__ import annotations

import torch
from torch import nn

from raylayers.connectors.base import Connector, ConnectorOutput, ConnectorSpec, deepest_and_rest, projector
from raylayers.errors import UserError


def base_and_extras(layers: list[int], depth: int) -> tuple[int, list[int]]:
    """The deepest selected layer (tokens) and the others (added inside the LLM); by default L/4 and L/2."""
    return deepest_and_rest(layers, depth, lambda d: {max(1, round(d / 4)), max(1, round(d / 2))})


class InternalDirectConnector(Connector):
    name = "internal_direct"
    adds_inside_lm = True

    def __init__(self, spec: ConnectorSpec):
        super().__init__()
        if spec.num_llm_layers < 1:
            raise UserError("connector 'internal_direct' needs the LLM depth (num_llm_layers)")
        self.base, self.extras = base_and_extras(spec.layers, spec.num_encoder_layers)
        self.proj = projector(spec.projector, spec.vision_dim, spec.llm_dim)
        self.extra_mlps = nn.ModuleList()
        for _ in self.extras:
            mlp = projector("mlp2x_gelu", spec.vision_dim, spec.llm_dim)
            nn.init.zeros_(mlp[-1].weight)
            nn.init.zeros_(mlp[-1].bias)
            self.extra_mlps.append(mlp)
        depth, llm_depth = spec.num_encoder_layers, spec.num_llm_layers
        self.target_llm_layers = [min(llm_depth - 1, layer * llm_depth // depth) for layer in self.extras]

    @classmethod
    def required_layers(cls, layers: list[int], depth: int) -> list[int]:
        base, extras = base_and_extras(layers, depth)
        return [*extras, base]

    def forward(self, features: dict[int, torch.Tensor]) -> ConnectorOutput:
        """Tokens (B, N, llm_dim) and {LLM block index: addition (B, N, llm_dim) for the image-token positions}."""
        tokens = self.proj(features[self.base])
        additions: dict[int, torch.Tensor] = {}
        for layer, mlp, target in zip(self.extras, self.extra_mlps, self.target_llm_layers):
            addition = mlp(features[layer])
            additions[target] = additions[target] + addition if target in additions else addition
        return ConnectorOutput(tokens, additions)
