"""Every connector: its shapes, its layer defaults at CLIP-L depth, and that it learns."""

import math

import pytest
import torch

from raylayers.connectors import CONNECTORS, ConnectorOutput, ConnectorSpec, build_connector, connector_class
from raylayers.connectors.mmfuser import default_mmfuser_layers
from raylayers.errors import UserError

D, LLM, DEPTH, GRID = 32, 48, 6, (4, 4)
LAYERS = {"linear": [3], "mlp2x_gelu": [5], "concat": [1, 3, 5], "dense_sti": [], "dense_sci": [],
          "dense_dci": [], "mmfuser": [], "scalar_mix": [], "internal_direct": [2, 5]}


def spec(name, layers=None, depth=DEPTH, **options):
    return ConnectorSpec(name=name, vision_dim=D, llm_dim=LLM, num_encoder_layers=depth,
                         layers=LAYERS[name] if layers is None else layers, grid=GRID, num_llm_layers=4,
                         options=options)


def features_for(connector_spec, batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    layers = connector_class(connector_spec.name).required_layers(connector_spec.layers,
                                                                  connector_spec.num_encoder_layers)
    return {layer: torch.randn(batch, GRID[0] * GRID[1], D, generator=generator) for layer in layers}


def test_every_connector_declares_what_callers_ask():
    assert all(name == cls.name for name, cls in CONNECTORS.items())
    assert sorted(n for n, cls in CONNECTORS.items() if cls.max_layers == 1) == ["linear", "mlp2x_gelu"]
    assert [n for n, cls in CONNECTORS.items() if cls.adds_inside_lm] == ["internal_direct"]
    exportable = [n for n, cls in CONNECTORS.items() if cls.export_refusal(spec(n)) is None]
    assert exportable == ["mlp2x_gelu", "concat"]
    assert CONNECTORS["concat"].export_refusal(ConnectorSpec("concat", D, LLM, DEPTH, [1, 3], projector="linear"))


@pytest.mark.parametrize("name", list(CONNECTORS))
def test_shapes(name):
    connector_spec = spec(name)
    connector = build_connector(connector_spec)
    output = connector(features_for(connector_spec))
    assert isinstance(output, ConnectorOutput)
    assert output.tokens.shape == (2, connector.num_tokens(16), LLM)


def test_token_counts_at_clip_l_scale():
    clip_l = dict(vision_dim=D, llm_dim=LLM, num_encoder_layers=24, grid=(24, 24), num_llm_layers=24)
    assert build_connector(ConnectorSpec("dense_sti", **clip_l)).num_tokens(576) == 576 + 72 + 72
    for name in ("linear", "concat", "dense_sci", "dense_dci", "mmfuser", "scalar_mix", "internal_direct"):
        layers = [3, 18, 23] if name == "concat" else []
        assert build_connector(ConnectorSpec(name, layers=layers, **clip_l)).num_tokens(576) == 576


def test_layer_defaults_follow_the_papers_at_clip_l_depth():
    assert connector_class("dense_sci").required_layers([], 24) == [7, 15, 23]  # hs[7], hs[15], hs[-2]
    assert connector_class("dense_dci").required_layers([], 24) == list(range(0, 24))  # hs[0..23]
    assert connector_class("linear").required_layers([], 24) == [23]  # LLaVA's -2
    assert default_mmfuser_layers(24) == (23, [3, 8, 13, 18])
    assert connector_class("scalar_mix").required_layers([], 24) == list(range(1, 25))


def test_mmfuser_starts_as_identity_on_the_deep_layer():
    connector_spec = spec("mmfuser")
    connector = build_connector(connector_spec)
    features = features_for(connector_spec)
    expected = connector.proj(features[connector.query_layer])
    torch.testing.assert_close(connector(features).tokens, expected)


def test_internal_direct_maps_layers_proportionally_and_starts_silent():
    connector = build_connector(spec("internal_direct", layers=[2, 5]))
    assert connector.base == 5 and connector.extras == [2]
    assert connector.target_llm_layers == [2 * 4 // 6]
    additions = connector(features_for(spec("internal_direct", layers=[2, 5]))).additions
    assert set(additions) == {1} and torch.count_nonzero(additions[1]) == 0


def test_concat_orders_layers_and_needs_them():
    connector = build_connector(spec("concat", layers=[5, 1, 3]))
    assert connector.layers == [1, 3, 5]
    with pytest.raises(UserError, match="needs its layers"):
        build_connector(spec("concat", layers=[]))


def test_bad_names_and_layers_are_clear_errors():
    with pytest.raises(UserError, match="unknown connector 'fancy' \\(valid: linear, mlp2x_gelu, concat"):
        connector_class("fancy")
    with pytest.raises(UserError, match="exactly one layer"):
        build_connector(spec("linear", layers=[1, 2]))
    with pytest.raises(UserError, match="layer 9 requested, encoder has 6 layers"):
        build_connector(spec("concat", layers=[1, 9]))
    with pytest.raises(UserError, match="layer -2 requested.*positive numbers"):  # the model resolves negatives
        spec("mlp2x_gelu", layers=[-2])


@pytest.mark.parametrize("name", list(CONNECTORS))
def test_it_learns(name):
    """Regress a fixed random function of the input layers; the loss must fall by more than half."""
    torch.manual_seed(0)
    connector_spec = spec(name)
    connector = build_connector(connector_spec)
    teacher = torch.nn.Linear(D, LLM)
    optimizer = torch.optim.Adam(connector.parameters(), lr=3e-3)
    losses = []
    for step in range(150):
        features = features_for(connector_spec, batch=8, seed=step)
        deepest = features[max(features)]
        output = connector(features)
        tokens = output.tokens
        if output.additions:  # internal_direct: its additions must learn too
            tokens = tokens + sum(output.additions.values())
        target = teacher(deepest).detach()
        loss = ((tokens[:, : deepest.shape[1]] - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(value) for value in losses)
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10, (losses[:3], losses[-3:])
