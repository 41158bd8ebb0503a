"""Checks of the values given to Storage, with errors that name the field, the value and what is allowed."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hpt_core.storage.errors import RecordNotFound
from hpt_core.storage.json_values import encode_json
from hpt_core.storage.states import TrialState, parse_choice

TRIAL_UPDATABLE_FIELDS = (
    "state",
    "end_reason",
    "restarts",
    "target_length",
    "length_done",
    "length_trained",
    "started_at",
    "ended_at",
)
"""The fields of a trial that `Storage.update_trial` may change."""

MAX_RECORD_ID = 2**31 - 1
"""The largest id an experiment or trial can have: its column is an INTEGER, 32 bits on PostgreSQL."""


def check_record_id(value: int, record: str) -> int:
    """`value` if an id column can hold it (1 to MAX_RECORD_ID); otherwise no `record` has it: RecordNotFound.

    A larger id (say 2**70 from a URL) would overflow the database's integer, an error rather than "no such
    record".
    """
    if not 0 < value <= MAX_RECORD_ID:
        raise RecordNotFound(f"{record} {value!r} does not exist")
    return value


def trial_changes(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The column values for `Storage.update_trial(**fields)`, each checked; unknown fields are refused."""
    unknown = sorted(set(fields) - set(TRIAL_UPDATABLE_FIELDS))
    if unknown:
        raise TypeError(
            f"update_trial got unknown field(s) {', '.join(unknown)}; allowed: {', '.join(TRIAL_UPDATABLE_FIELDS)}"
        )
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "state":
            values[name] = parse_choice(TrialState, value, "trial state").value
        elif name == "end_reason":
            values[name] = None if value is None else check_text(_enum_value(value), name)
        elif name in ("restarts", "length_done", "length_trained"):
            values[name] = check_count(value, name)
        elif name == "target_length":
            values[name] = None if value is None else check_count(value, name)
        else:
            values[name] = check_optional_datetime(value, name)
    return values


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def check_text(value: Any, field: str) -> str:
    """`value` if it is text that both SQLite and PostgreSQL store: no NUL character, valid UTF-8."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, but got {value!r} of type {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{field} must not contain NUL characters, but got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{field} must be encodable as UTF-8 (no lone surrogates), but got {value!r}") from None
    return str(value)


def check_optional_text(value: Any, field: str) -> str | None:
    """`value` if it is None or storable text."""
    return None if value is None else check_text(value, field)


def check_integer(value: Any, field: str) -> int:
    """`value` if it is an int (not a bool) that fits a 64-bit column."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an integer, but got {value!r} of type {type(value).__name__}")
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{field} must fit in 64 bits (-2**63 <= {field} < 2**63), but got {value}")
    return int(value)


def check_optional_integer(value: Any, field: str) -> int | None:
    """`value` if it is None or an integer that fits a 64-bit column."""
    return None if value is None else check_integer(value, field)


def check_count(value: Any, field: str) -> int:
    """`value` if it is an integer >= 0."""
    number = check_integer(value, field)
    if number < 0:
        raise ValueError(f"{field} must be >= 0, but got {number}")
    return number


def check_optional_datetime(value: Any, field: str) -> datetime | None:
    """`value` if it is None or a timezone-aware datetime."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{field} must be a timezone-aware datetime or None, but got {value!r}")
    return value


def check_json_object(value: Any, field: str) -> dict[str, Any]:
    """`value` if it is a dict of JSON data (checked here so that errors name the field), else an error."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{field} must be a dict, but got {value!r} of type {type(value).__name__}")
    encode_json(value, field)
    return dict(value)
