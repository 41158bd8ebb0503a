"""Checks of the fields of a trial's request to the channel: a wrong one is a `BadField` (answered 400)
naming the field, the value and what is allowed.

JSON lets a request carry what no trial sends (`"batches": Infinity`, `"batches": "10"`, a list where an
object belongs); these checks refuse it before anything is stored. A metric may be any JSON value but a
non-finite number (NaN, infinity), which is refused naming the metric; only the searcher metric of a
validation report is let through, for the trial's lifecycle to end the trial ("invalid searcher metric").
The trial side runs the same metric check before it sends (`check_finite`), so its report call raises.

>>> count({"batches": 20}, "batches")
20
>>> count({"batches": float("inf")}, "batches")
Traceback (most recent call last):
...
hpt_core.channel_fields.BadField: field 'batches' must be a whole number from 0 to 2**63 - 1, but got inf
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping
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


def metrics(body: Mapping[str, Any], field: str, searcher_metric: str | None = None) -> dict[str, Any]:
    """The field as a JSON object of metrics, none of them (but `searcher_metric`) a non-finite number."""
    value = json_object(body, field)
    check_finite(value, searcher_metric)
    return value


def check_finite(metrics: Mapping[str, Any], searcher_metric: str | None = None) -> None:
    """Refuse a metric whose value is (or holds) NaN or an infinity with a ValueError (what the trial's report
    call raises) naming it; `searcher_metric` is let through."""
    for name, value in metrics.items():
        if name != searcher_metric and not _finite(value):
            shown = repr(value)
            raise ValueError(f"metric {name!r} is {shown[:200]}: a metric must not be NaN or infinite; "
                             "nothing of this report is stored")


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


def objects(body: Mapping[str, Any], field: str) -> list[dict[str, Any]]:
    """The field as a non-empty list of JSON objects."""
    value = _field(body, field, _REQUIRED)
    if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
        raise _refuse(field, value, "a non-empty list of JSON objects")
    return value


@contextlib.contextmanager
def within(place: str) -> Iterator[None]:
    """Name `place` (e.g. `reports[3]`) in the refusal of a field checked inside it."""
    try:
        yield
    except BadField as error:
        raise BadField(f"{place}: {error}") from None


def _field(body: Mapping[str, Any], field: str, default: Any) -> Any:
    value = body.get(field, default)
    if value is _REQUIRED:
        raise BadField(f"field {field!r} is required, but the request has none")
    return value
