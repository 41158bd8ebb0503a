"""Checks of request parameters: a bad one is a `BadParameter` naming the parameter, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class BadParameter(ValueError):
    """A request parameter that cannot be used (the API answers 400 with this message)."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        super().__init__(f"parameter {name!r} must be {allowed}, but got {value!r}")


def choice(name: str, value: str, allowed: Iterable[str]) -> str:
    """`value` if it is one of `allowed`."""
    options = list(allowed)
    if value not in options:
        raise BadParameter(name, value, "one of " + ", ".join(options))
    return value


def bounded(name: str, value: int, low: int, high: int | None = None) -> int:
    """`value` if low <= value (<= high)."""
    if value < low or (high is not None and value > high):
        raise BadParameter(name, value, f"an integer from {low} to {high}" if high is not None
                           else f"an integer of at least {low}")
    return value
