"""Errors raised by the storage layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpt_core.storage.records import LeaseRecord


class RecordNotFound(KeyError):
    """An experiment, trial or checkpoint with the given id does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SchemaVersionError(RuntimeError):
    """The database was written by a newer hpt whose schema this code does not know."""


class LeaseHeld(RuntimeError):
    """Another holder has a lease on the experiment that has not expired (`lease` says who)."""

    def __init__(self, lease: LeaseRecord) -> None:
        super().__init__(f"experiment {lease.experiment_id} is leased by process {lease.pid} on host {lease.host}")
        self.lease = lease
