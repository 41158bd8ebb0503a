"""Plain-JSON encoding that keeps non-finite floats, for JSON columns on SQLite and PostgreSQL alike.

JSON has no NaN or infinity, and PostgreSQL rejects the `NaN` tokens that Python's `json` writes. So
non-finite floats are stored as the strings "NaN", "Infinity" and "-Infinity". A string that would read
back as one of those (or as an escaped one) gets one leading backslash, so every value round-trips:

>>> decode_json(encode_json({"loss": float("inf"), "label": "NaN"}))
{'loss': inf, 'label': 'NaN'}
>>> encode_json({"loss": float("inf"), "label": "NaN"})
{'loss': 'Infinity', 'label': '\\\\NaN'}
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

_NON_FINITE_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_ESCAPED_OR_NAME = re.compile(r"\\*(NaN|Infinity|-Infinity)")


def encode_json(value: Any, where: str = "value") -> Any:
    """`value` as plain JSON data (dicts with str keys, lists, str, int, finite float, bool, None).

    Tuples become lists; other numbers (e.g. numpy scalars) become int or float. Raises TypeError naming
    the place (`where`) of anything else, including dict keys that are not strings.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return "\\" + value if _ESCAPED_OR_NAME.fullmatch(value) else value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    if isinstance(value, Mapping):
        encoded = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, but got {key!r} of type {type(key).__name__}")
            encoded[key] = encode_json(item, f"{where}[{key!r}]")
        return encoded
    if isinstance(value, (list, tuple)):
        return [encode_json(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise TypeError(
        f"{where}: values must be JSON data (dict, list, str, number, bool, None), "
        f"but got {value!r} of type {type(value).__name__}"
    )


def decode_json(value: Any) -> Any:
    """The inverse of `encode_json`."""
    if isinstance(value, str):
        if value in _NON_FINITE_NAMES:
            return _NON_FINITE_NAMES[value]
        return value[1:] if _ESCAPED_OR_NAME.fullmatch(value) else value
    if isinstance(value, dict):
        return {key: decode_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_json(item) for item in value]
    return value
