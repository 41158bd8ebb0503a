"""The JSON encoding of storage: any JSON value, non-finite floats included, round-trips exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpt_core.storage.json_values import decode_json, encode_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.sampled_from(["NaN", "\\-Infinity"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


def _same(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return (math.isnan(left) and math.isnan(right)) or left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return list(left) == list(right) and all(_same(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


@given(json_values)
def test_every_value_round_trips_through_strict_json(value: object) -> None:
    stored = json.loads(json.dumps(encode_json(value), allow_nan=False))
    assert _same(decode_json(stored), value)


def test_non_finite_floats_are_stored_as_their_names() -> None:
    assert encode_json([math.nan, math.inf, -math.inf]) == ["NaN", "Infinity", "-Infinity"]


def test_numpy_scalars_and_tuples_become_plain_json() -> None:
    encoded = encode_json({"loss": np.float32(0.5), "step": np.int64(3), "shape": (2, 3)})
    assert encoded == {"loss": 0.5, "step": 3, "shape": [2, 3]}
    assert type(encoded["step"]) is int and type(encoded["loss"]) is float


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {"b": object()}}, r"state\['a'\]\['b'\]: values must be JSON data"),
        ({"a": [1, {2: 3}]}, r"state\['a'\]\[1\]: keys must be strings, but got 2 of type int"),
        ({"a": b"bytes"}, r"state\['a'\].*bytes"),
    ],
)
def test_values_that_are_not_json_data_are_refused_naming_the_place(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        encode_json(value, "state")
