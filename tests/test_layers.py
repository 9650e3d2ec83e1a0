import pytest
from hypothesis import given
from hypothesis import strategies as st

from raylayers.errors import UserError
from raylayers.layers import LayerRangeError, parse_layer_spec, resolve_layer, resolve_layers

depths = st.integers(min_value=1, max_value=64)


def test_conventions_of_design_md():
    assert resolve_layer(-1, 24) == 24
    assert resolve_layer(-2, 24) == 23  # LLaVA's usual "-2" is layer 23 of CLIP-L
    assert resolve_layer(0, 24) == 0  # the embedding output
    assert resolve_layer(24, 24) == 24
    assert resolve_layer(-24, 24) == 1


@given(depths, st.data())
def test_positive_numbers_are_themselves(depth, data):
    layer = data.draw(st.integers(0, depth))
    assert resolve_layer(layer, depth) == layer


@given(depths, st.data())
def test_negative_numbers_index_hidden_states_from_the_end(depth, data):
    layer = data.draw(st.integers(-depth, -1))
    hidden_states = list(range(depth + 1))  # hidden_states[i] is layer i
    assert resolve_layer(layer, depth) == hidden_states[layer]
    assert 1 <= resolve_layer(layer, depth) <= depth


@given(depths, st.data())
def test_out_of_range_states_the_depth(depth, data):
    layer = data.draw(st.one_of(st.integers(depth + 1, depth + 1000), st.integers(-depth - 1000, -depth - 1)))
    with pytest.raises(LayerRangeError) as info:
        resolve_layer(layer, depth)
    message = str(info.value)
    assert f"layer {layer} requested" in message
    assert f"encoder has {depth} layers" in message
    assert f"0..{depth} or -{depth}..-1" in message
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_clip_l_example_message():
    with pytest.raises(LayerRangeError, match=r"layer 25 requested, encoder has 24 layers \(valid: 0..24 or -24..-1\)"):
        resolve_layer(25, 24)


def test_non_integers_are_rejected():
    for bad in (1.5, "3", True, None):
        with pytest.raises(LayerRangeError):
            resolve_layer(bad, 12)


@given(st.lists(st.integers(-12, 12), min_size=1, max_size=10))
def test_resolve_layers_keeps_order_and_drops_duplicates(layers):
    resolved = resolve_layers(layers, 12)
    expected = []
    for layer in layers:
        positive = layer if layer >= 0 else 13 + layer
        if positive not in expected:
            expected.append(positive)
    assert resolved == expected


def test_parse_layer_spec():
    assert parse_layer_spec("3,18,-2") == [3, 18, -2]
    assert parse_layer_spec("1-4") == [1, 2, 3, 4]
    assert parse_layer_spec("-3..-1") == [-3, -2, -1]
    assert parse_layer_spec(" 0 , 2..3 ") == [0, 2, 3]
    for bad in ("", "a", "4-1", "1,,x"):
        with pytest.raises(LayerRangeError):
            parse_layer_spec(bad)
