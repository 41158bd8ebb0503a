"""The states and kinds that storage accepts; each is a `str`, so plain strings work too."""

from __future__ import annotations

import enum
from typing import TypeVar

E = TypeVar("E", bound=enum.StrEnum)


class ExperimentState(enum.StrEnum):
    """Where an experiment is in its life."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    ERROR = "ERROR"

    @property
    def is_terminal(self) -> bool:
        return self in (ExperimentState.COMPLETED, ExperimentState.CANCELED, ExperimentState.ERROR)


class TrialState(enum.StrEnum):
    """Where a trial is in its life."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    ERROR = "ERROR"


class MetricKind(enum.StrEnum):
    """Which report a group of metrics came from."""

    TRAINING = "training"
    VALIDATION = "validation"


class CheckpointState(enum.StrEnum):
    """Whether a checkpoint's files are still on disk."""

    COMPLETED = "COMPLETED"
    DELETED = "DELETED"


class SearcherRecordKind(enum.StrEnum):
    """An entry of the searcher log: an event fed to the search method, an operation it returned, or a
    snapshot of the experiment's state after the entries before it (only the latest one is kept)."""

    EVENT = "event"
    OPERATION = "operation"
    SNAPSHOT = "snapshot"


def parse_choice(kind: type[E], value: str, field: str) -> E:
    """`value` as a member of `kind`, or a ValueError naming `field` and the allowed values."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{field} must be one of {allowed}, but got {value!r}") from None
