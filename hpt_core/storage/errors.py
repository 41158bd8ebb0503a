"""Errors raised by the storage layer."""

from __future__ import annotations


class RecordNotFound(KeyError):
    """An experiment, trial or checkpoint with the given id does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SchemaVersionError(RuntimeError):
    """The database was written by a newer hpt whose schema this code does not know."""
