"""Checks of the fields of a trial's request to the channel: a wrong one is a `BadField` (answered 400)
naming the field, the value and what is allowed.

JSON lets a request carry what no trial sends (`"batches": Infinity`, `"batches": "10"`, a list where an
object belongs); these checks refuse it before anything is stored. Metric values are not checked here:
any JSON value is stored as reported, and the searcher metric's rules live with the trial's lifecycle.

>>> count({"batches": 20}, "batches")
20
>>> count({"batches": float("inf")}, "batches")
Traceback (most recent call last):
...
hpt_core.channel_fields.BadField: field 'batches' must be a whole number from 0 to 2**63 - 1, but got inf
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_COUNT = 2**63 - 1
"""The largest count (batches, epochs) storage holds: a 64-bit column."""
_REQUIRED = object()


class BadField(ValueError):
    """A field of a request body that cannot be used."""


def _refuse(field: str, value: Any, allowed: str) -> BadField:
    shown = repr(value)
    return BadField(f"field {field!r} must be {allowed}, but got {shown[:200]}" + ("..." if len(shown) > 200 else ""))


def count(body: Mapping[str, Any], field: str, default: Any = _REQUIRED) -> int:
    """The field as a whole number from 0 to MAX_COUNT (a JSON integer: not a float, a string or a bool)."""
    value = _field(body, field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise _refuse(field, value, "a whole number from 0 to 2**63 - 1")
    return value


def identifier(body: Mapping[str, Any], field: str) -> int:
    """The field as an integer id (a JSON integer: not a float, a string or a bool)."""
    value = _field(body, field, _REQUIRED)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(field, value, "an integer")
    return value


def flag(body: Mapping[str, Any], field: str) -> bool:
    """The field as true or false (false when it is left out)."""
    value = _field(body, field, False)
    if not isinstance(value, bool):
        raise _refuse(field, value, "true or false")
    return value


def text(body: Mapping[str, Any], field: str, default: Any = _REQUIRED) -> str:
    """The field as a string."""
    value = _field(body, field, default)
    if not isinstance(value, str):
        raise _refuse(field, value, "a string")
    return value


def choice(body: Mapping[str, Any], field: str, allowed: Iterable[str]) -> str:
    """The field as one of `allowed`."""
    options = list(allowed)
    value = _field(body, field, _REQUIRED)
    if value not in options:
        raise _refuse(field, value, "one of " + ", ".join(repr(option) for option in options))
    return str(value)


def json_object(body: Mapping[str, Any], field: str, default: Any = _REQUIRED) -> dict[str, Any]:
    """The field as a JSON object (its values unchecked)."""
    value = _field(body, field, default)
    if not isinstance(value, dict):
        raise _refuse(field, value, "a JSON object")
    return dict(value)


def _field(body: Mapping[str, Any], field: str, default: Any) -> Any:
    value = body.get(field, default)
    if value is _REQUIRED:
        raise BadField(f"field {field!r} is required, but the request has none")
    return value
