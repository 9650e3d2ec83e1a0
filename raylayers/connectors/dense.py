"""DenseConnector (Yao et al., NeurIPS 2024), generalised from CLIP-L's 24 layers to any depth L.

The base layer is the deepest selected one (default: the penultimate, LLaVA's "-2"). The paper's extra layers are
hs[7] and hs[15] on CLIP-L, i.e. layers round(L/3) - 1 and round(2L/3) - 1 here (the paper's fusion baselines):
- `dense_sti` (sparse token integration): the extra layers are average-pooled along the token axis with stride 8
  and appended as extra tokens after the base layer's (576 + 72 + 72 on CLIP-L/336); one shared projector.
- `dense_sci` (sparse channel integration): channel concat of [base, extra_1, extra_2].
- `dense_dci` (dense channel integration): channel concat of [base, mean(hs[0 .. L/2-1]), mean(hs[L/2 .. L-1])].
All end in `mlp2x_gelu`, as DenseConnector does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from raylayers.connectors.base import Connector, ConnectorSpec, deepest_and_rest, penultimate, projector


def base_and_extras(layers: list[int], depth: int) -> tuple[int, list[int]]:
    """STI and SCI: the deepest selected layer and the others; by default the paper's hs[7] and hs[15] scaled."""
    return deepest_and_rest(layers, depth, lambda d: {max(1, round(d / 3) - 1), max(1, round(2 * d / 3) - 1)})


class DenseSTI(Connector):
    name = "dense_sti"

    def __init__(self, spec: ConnectorSpec):
        super().__init__()
        self.base, self.extras = base_and_extras(spec.layers, spec.num_encoder_layers)
        self.stride = int(spec.option("pool_stride", 8))
        self.proj = projector("mlp2x_gelu", spec.vision_dim, spec.llm_dim)

    @classmethod
    def required_layers(cls, layers: list[int], depth: int) -> list[int]:
        base, extras = base_and_extras(layers, depth)
        return [*extras, base]

    def num_tokens(self, num_patches: int) -> int:
        return num_patches + len(self.extras) * math.ceil(num_patches / self.stride)

    def project(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        tokens = [features[self.base]]  # (B, N, D)
        for layer in self.extras:
            pooled = F.avg_pool1d(features[layer].transpose(1, 2), self.stride, self.stride, ceil_mode=True)
            tokens.append(pooled.transpose(1, 2))  # (B, ceil(N / stride), D)
        return self.proj(torch.cat(tokens, dim=1))  # (B, N + k * ceil(N / stride), llm_dim)


class DenseSCI(Connector):
    name = "dense_sci"

    def __init__(self, spec: ConnectorSpec):
        super().__init__()
        self.base, self.extras = base_and_extras(spec.layers, spec.num_encoder_layers)
        self.proj = projector("mlp2x_gelu", spec.vision_dim * (1 + len(self.extras)), spec.llm_dim)

    @classmethod
    def required_layers(cls, layers: list[int], depth: int) -> list[int]:
        base, extras = base_and_extras(layers, depth)
        return [*extras, base]

    def project(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        fused = torch.cat([features[self.base], *(features[layer] for layer in self.extras)], dim=-1)  # (B,N,D*3)
        return self.proj(fused)


def dci_halves(depth: int) -> tuple[list[int], list[int]]:
    """hs[0 .. L/2-1] and hs[L/2 .. L-1] (layer 0 is the embedding output)."""
    half = depth // 2
    return list(range(0, half)), list(range(half, depth))


def dci_base(layers: list[int], depth: int) -> int:
    """DCI's base layer: the deepest selected one, or the penultimate (the halves are fixed by the depth)."""
    return max(layers, default=penultimate(depth))


class DenseDCI(Connector):
    name = "dense_dci"

    def __init__(self, spec: ConnectorSpec):
        super().__init__()
        self.base = dci_base(spec.layers, spec.num_encoder_layers)
        self.low, self.high = dci_halves(spec.num_encoder_layers)
        self.proj = projector("mlp2x_gelu", spec.vision_dim * 3, spec.llm_dim)

    @classmethod
    def required_layers(cls, layers: list[int], depth: int) -> list[int]:
        low, high = dci_halves(depth)
        return sorted({*low, *high, dci_base(layers, depth)})

    def project(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        low = torch.stack([features[layer] for layer in self.low]).mean(0)  # (B, N, D)
        high = torch.stack([features[layer] for layer in self.high]).mean(0)
        return self.proj(torch.cat([features[self.base], low, high], dim=-1))  # (B, N, D * 3) -> llm_dim
