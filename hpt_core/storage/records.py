"""What storage returns: frozen snapshots of rows, datetimes in UTC."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Self


class _FromRow:
    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """The record of a database row (a mapping from column name to value)."""
        return cls(**{column.name: row[column.name] for column in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class ExperimentRecord(_FromRow):
    """One experiment: its normalised config, state, searcher state and where its files live."""

    id: int
    name: str | None
    description: str
    config: dict[str, Any]
    state: str
    seed: int
    secret: str = field(repr=False)
    model_dir: str
    experiment_dir: str | None
    searcher_state: dict[str, Any] | None
    progress: float
    created_at: datetime
    ended_at: datetime | None
    uuid: str
    """names the experiment's folders, unique across databases (ids are unique only within one)"""


@dataclass(frozen=True)
class TrialRecord(_FromRow):
    """One trial: a searcher request's hyperparameters and how far it has trained."""

    id: int
    experiment_id: int
    request_id: int
    hparams: dict[str, Any]
    state: str
    end_reason: str | None
    restarts: int
    parent_request_id: int | None
    seed: int
    target_length: int | None
    length_done: int
    length_trained: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class MetricRecord(_FromRow):
    """One report of training or validation metrics (name -> value) from a trial."""

    id: int
    trial_id: int
    kind: str
    metrics: dict[str, Any]
    batches: int
    epochs: int
    reported_at: datetime
    attempt: int | None = None
    seq: int | None = None
    """The attempt of the trial that sent it and its number within the attempt (None if not sent by a trial)."""


@dataclass(frozen=True)
class Report:
    """A report as a trial sends it, to be kept once per (trial_id, attempt, seq); `length` is how far the trial
    got, in the search method's unit (its `length_trained` grows to it)."""

    trial_id: int
    attempt: int
    seq: int
    kind: str
    metrics: dict[str, Any]
    batches: int
    epochs: int
    length: int


@dataclass(frozen=True)
class CheckpointRecord(_FromRow):
    """One checkpoint of a trial; `length` is in searcher units (None if unknown)."""

    id: str
    trial_id: int
    batches: int
    epochs: int
    length: int | None
    metadata: dict[str, Any]
    path: str
    state: str
    created_at: datetime


@dataclass(frozen=True)
class SearcherRecord(_FromRow):
    """One entry of an experiment's append-only searcher log (an event or an operation)."""

    id: int
    experiment_id: int
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class LeaseRecord:
    """The lease a controller holds on an experiment: who (host, pid, a random token), since when, until when.

    `expired` is whether `expires_at` had passed by the database's clock when the lease was read.
    """

    experiment_id: int
    token: str = field(repr=False)
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime
    expired: bool

    def holder(self) -> dict[str, Any]:
        """Who holds the lease and until when, as JSON-ready values (the token stays private)."""
        return {"host": self.host, "pid": self.pid, "since": self.acquired_at.isoformat(),
                "expires_at": self.expires_at.isoformat(), "expired": self.expired}
