"""The connector zoo: how selected vision layers become LLM input tokens, one file per connector.

Every connector is an `nn.Module` built from a `ConnectorSpec` and offers:
- `required_layers(spec) -> list[int]` (static): the encoder layers (positive numbers) it reads;
- `num_tokens(num_patches) -> int`: visual tokens it emits for an image of `num_patches` patches;
- `forward(features) -> Tensor (B, T, llm_dim)`: `features` maps layer -> patch features (B, N, D).
`internal_direct` also returns per-LLM-layer additions (see its file). Select one by name in config.
"""

from __future__ import annotations

from raylayers.connectors.base import ConnectorSpec, projector
from raylayers.connectors.concat import ConcatConnector
from raylayers.connectors.dense import DenseDCI, DenseSCI, DenseSTI
from raylayers.connectors.internal_direct import InternalDirectConnector
from raylayers.connectors.mmfuser import MMFuserConnector
from raylayers.connectors.scalar_mix import ScalarMixConnector
from raylayers.connectors.single import LinearConnector, MLPConnector
from raylayers.errors import UserError

CONNECTORS = {
    "linear": LinearConnector,
    "mlp2x_gelu": MLPConnector,
    "concat": ConcatConnector,
    "dense_sti": DenseSTI,
    "dense_sci": DenseSCI,
    "dense_dci": DenseDCI,
    "mmfuser": MMFuserConnector,
    "scalar_mix": ScalarMixConnector,
    "internal_direct": InternalDirectConnector,
}


def connector_class(name: str):
    try:
        return CONNECTORS[name]
    except KeyError:
        raise UserError(f"unknown connector '{name}' (valid: {', '.join(CONNECTORS)})") from None


def build_connector(spec: ConnectorSpec):
    """Instantiate the connector `spec.name` after checking its layers against the encoder depth."""
    cls = connector_class(spec.name)
    return cls(spec)


__all__ = ["CONNECTORS", "ConnectorSpec", "build_connector", "connector_class", "projector"]
