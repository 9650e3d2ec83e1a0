"""The connector zoo: how selected vision layers become LLM input tokens, one file per connector.

Every connector is a `Connector` (connectors/base.py) built from a `ConnectorSpec` and offers:
- `required_layers(layers, depth) -> list[int]` (class method): the encoder layers (positive numbers) it reads;
- `num_tokens(num_patches) -> int`: visual tokens it emits for an image of `num_patches` patches;
- `forward(features) -> ConnectorOutput`: `features` maps layer -> patch features (B, N, D);
and declares `name`, `max_layers`, `adds_inside_lm` and `export_refusal`. Select one by name in config.
"""

from __future__ import annotations

from raylayers.connectors.base import Connector, ConnectorOutput, ConnectorSpec, projector
from raylayers.connectors.concat import ConcatConnector
from raylayers.connectors.dense import DenseDCI, DenseSCI, DenseSTI
from raylayers.connectors.internal_direct import InternalDirectConnector
from raylayers.connectors.mmfuser import MMFuserConnector
from raylayers.connectors.scalar_mix import ScalarMixConnector
from raylayers.connectors.single import LinearConnector, MLPConnector
from raylayers.errors import UserError

CONNECTORS: dict[str, type[Connector]] = {cls.name: cls for cls in (
    LinearConnector, MLPConnector, ConcatConnector, DenseSTI, DenseSCI, DenseDCI, MMFuserConnector,
    ScalarMixConnector, InternalDirectConnector)}


def connector_class(name: str):
    try:
        return CONNECTORS[name]
    except KeyError:
        raise UserError(f"unknown connector '{name}' (valid: {', '.join(CONNECTORS)})") from None


def build_connector(spec: ConnectorSpec) -> Connector:
    """The connector `spec.name`, built from a spec whose layers are positive (`raylayers.model` resolves them)."""
    return connector_class(spec.name)(spec)


__all__ = ["CONNECTORS", "Connector", "ConnectorOutput", "ConnectorSpec", "build_connector", "connector_class",
           "projector"]
