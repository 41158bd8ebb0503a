"""What a search method asks the controller to do, and why a trial may end early."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Union


class ExitedReason(str, enum.Enum):
    """Why a trial ended before its search method closed it."""

    ERRORED = "ERRORED"
    INVALID_HP = "INVALID_HP"
    USER_CANCELED = "USER_CANCELED"
    USER_REQUESTED_STOP = "USER_REQUESTED_STOP"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Create:
    """Start a trial with these hyperparameters (from `checkpoint`'s request's latest checkpoint, if given)."""

    request_id: int
    hparams: dict[str, Any] = field(hash=False)
    checkpoint: int | None = None


@dataclass(frozen=True)
class ValidateAfter:
    """Train the trial to `length` (absolute, in the units of max_length), then validate and report."""

    request_id: int
    length: int


@dataclass(frozen=True)
class Close:
    """The trial is done: the search method will ask nothing more of it."""

    request_id: int


@dataclass(frozen=True)
class Shutdown:
    """The search is over; `failure` if every trial errored, `cancel` if every trial was cancelled."""

    failure: bool = False
    cancel: bool = False


Operation = Union[Create, ValidateAfter, Close, Shutdown]


def operation_to_dict(operation: Operation) -> dict[str, Any]:
    """A plain-JSON form of an operation, for the experiment's event record."""
    kind = type(operation).__name__
    return {"type": kind, **operation.__dict__}


def operation_from_dict(data: dict[str, Any]) -> Operation:
    kinds = {cls.__name__: cls for cls in (Create, ValidateAfter, Close, Shutdown)}
    fields = {key: value for key, value in data.items() if key != "type"}
    return kinds[data["type"]](**fields)
