"""The results of experiments from Python (a notebook, a script): trials, metrics, the best trial and checkpoint.

>>> import hpt_core
>>> experiment = hpt_core.Experiment.load(7)                       # doctest: +SKIP
>>> experiment.best_trial().hparams                                # doctest: +SKIP
{'lr': 0.031}
>>> experiment.best_checkpoint().path                              # doctest: +SKIP
PosixPath('/home/me/.hpt/experiments/9c0d1e2f-.../checkpoints/1b4e28ba-2fa1-11d2-883f-0016d3cca427')
>>> frame = experiment.metrics_frame("validation")                   # doctest: +SKIP
>>> frame.pivot(index="batches", columns="trial_id", values="val_loss")  # doctest: +SKIP

The trials' best and latest validations and the best trial are those of `hpt experiment describe`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hpt_core.checkpoint_gc import rank_by_step, rank_by_validation, searcher_validations
from hpt_core.describe import describe_experiment
from hpt_core.storage import CheckpointRecord, ExperimentRecord, MetricRecord, RecordNotFound, Storage, open_storage

#: The columns of `Experiment.metrics_frame` before the metrics themselves.
METRIC_FRAME_COLUMNS = ("trial_id", "request_id", "kind", "batches", "epochs", "reported_at")


@dataclass(frozen=True)
class Validation:
    """One value of the searcher metric and the step it was reported at."""

    value: float
    batches: int
    epochs: int


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint of a trial: its folder and the validation metrics reported at its step (None if none were)."""

    id: str
    trial_id: int
    batches: int
    epochs: int
    path: Path
    state: str
    metadata: dict[str, Any]
    created_at: datetime
    validation: dict[str, Any] | None

    @property
    def deleted(self) -> bool:
        """Whether garbage collection removed its files."""
        return self.state == "DELETED"


@dataclass(frozen=True)
class Trial:
    """One trial of an experiment; `checkpoints` are those whose files still exist, oldest first."""

    id: int
    experiment_id: int
    request_id: int
    state: str
    end_reason: str | None
    hparams: dict[str, Any]
    restarts: int
    parent_request_id: int | None
    length_trained: int
    target_length: int | None
    best_validation: Validation | None
    latest_validation: Validation | None
    checkpoints: tuple[Checkpoint, ...]
    best_checkpoint: Checkpoint | None
    latest_checkpoint: Checkpoint | None


class Experiment:
    """An experiment in storage, read fresh on every call (it may still be running).

    Open one with `Experiment.load(experiment_id, storage=None)`; `storage` is a database URL, a
    `Storage`, or None for the default store (`$HPT_STORAGE`, else SQLite under `$HPT_HOME`).
    """

    def __init__(self, storage: Storage, record: ExperimentRecord, *, owns_storage: bool = False) -> None:
        self.storage = storage
        self.id = record.id
        self.name = record.name
        self.description = record.description
        self.config = record.config
        self.experiment_dir = Path(record.experiment_dir) if record.experiment_dir else None
        self.created_at = record.created_at
        searcher = record.config.get("searcher", {})
        self.metric: str = searcher.get("metric", "")
        self.smaller_is_better: bool = searcher.get("smaller_is_better", True)
        self._owns_storage = owns_storage

    @classmethod
    def load(cls, experiment_id: int, storage: str | Storage | None = None) -> Experiment:
        """The experiment with this id; LookupError if the storage has none."""
        opened, owned = resolve_storage(storage)
        try:
            record = opened.get_experiment(experiment_id)
        except RecordNotFound:
            if owned:
                opened.close()
            raise
        return cls(opened, record, owns_storage=owned)

    def __repr__(self) -> str:
        return f"Experiment(id={self.id}, name={self.name!r}, state={self.state!r})"

    def __enter__(self) -> Experiment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the storage if `load` opened it."""
        if self._owns_storage:
            self.storage.close()

    @property
    def state(self) -> str:
        """ACTIVE, PAUSED, COMPLETED, CANCELED or ERROR, as stored now."""
        return self.storage.get_experiment(self.id).state

    @property
    def progress(self) -> float:
        """The search method's progress in [0, 1], as stored now."""
        return self.storage.get_experiment(self.id).progress

    def describe(self) -> dict[str, Any]:
        """What `hpt experiment describe --json` prints (plain, JSON-ready data)."""
        return describe_experiment(self.storage, self.id)

    def trials(self) -> list[Trial]:
        """Every trial, in order of request_id."""
        description = self.describe()
        checkpoints = self._checkpoints_by_trial()
        validations = self._searcher_validations()
        return [self._trial(entry, checkpoints.get(entry["id"], []), validations) for entry in description["trials"]]

    def trial(self, trial_id: int) -> Trial:
        """The trial with this id; LookupError if it is not a trial of this experiment."""
        for trial in self.trials():
            if trial.id == trial_id:
                return trial
        raise RecordNotFound(f"experiment {self.id} has no trial {trial_id!r}")

    def best_trial(self) -> Trial | None:
        """The trial with the best validation of the searcher metric (the lower id among equals); None if none."""
        best_id = self.describe()["best_trial"]
        return None if best_id is None else self.trial(best_id)

    def checkpoints(self, include_deleted: bool = False) -> list[Checkpoint]:
        """The experiment's checkpoints, oldest first (with those garbage collection removed, if asked)."""
        validations = self._validation_metrics()
        return [_checkpoint(record, validations)
                for record in self.storage.checkpoints(experiment_id=self.id, include_deleted=include_deleted)]

    def best_checkpoint(self) -> Checkpoint | None:
        """The checkpoint whose validation is best (the older among equals); None if no checkpoint has one."""
        records = self.storage.checkpoints(experiment_id=self.id)
        ranked = rank_by_validation(records, self._searcher_validations(), self.smaller_is_better)
        if not ranked:
            return None
        return _checkpoint(ranked[0], self._validation_metrics())

    def metrics(self, kind: str | None = None, trial_id: int | None = None) -> list[dict[str, Any]]:
        """Every report, oldest first: dicts of trial_id, request_id, kind, batches, epochs, reported_at, metrics."""
        if trial_id is not None:
            self._require_trial(trial_id)
        request_ids = {trial.id: trial.request_id for trial in self.storage.list_trials(self.id)}
        return [
            {"trial_id": record.trial_id, "request_id": request_ids.get(record.trial_id), "kind": record.kind,
             "batches": record.batches, "epochs": record.epochs, "reported_at": record.reported_at,
             "metrics": dict(record.metrics)}
            for record in self._metric_records(kind, trial_id)
        ]

    def metrics_frame(self, kind: str | None = None, trial_id: int | None = None) -> Any:
        """`metrics()` as a pandas DataFrame, one column per metric name (named `metrics.<name>` if it clashes
        with one of METRIC_FRAME_COLUMNS). Needs pandas, which hpt does not install."""
        try:
            import pandas
        except ImportError as error:
            raise ImportError("Experiment.metrics_frame needs pandas, which hpt does not install: "
                              "`pip install pandas`, or use Experiment.metrics() for plain lists") from error
        rows = []
        for row in self.metrics(kind, trial_id):
            flat = {column: row[column] for column in METRIC_FRAME_COLUMNS}
            for name, value in row["metrics"].items():
                flat[f"metrics.{name}" if name in METRIC_FRAME_COLUMNS else name] = value
            rows.append(flat)
        return pandas.DataFrame.from_records(rows, columns=_frame_columns(rows))

    def _trial(self, entry: Mapping[str, Any], checkpoints: list[Checkpoint],
               validations: Mapping[int, Mapping[int, float]]) -> Trial:
        ranked = rank_by_validation(checkpoints, validations, self.smaller_is_better)
        latest = rank_by_step(checkpoints)
        return Trial(
            id=entry["id"], experiment_id=self.id, request_id=entry["request_id"], state=entry["state"],
            end_reason=entry["end_reason"], hparams=entry["hparams"], restarts=entry["restarts"],
            parent_request_id=entry["parent_request_id"], length_trained=entry["length_trained"],
            target_length=entry["target_length"], best_validation=_validation(entry["best_validation"]),
            latest_validation=_validation(entry["latest_validation"]), checkpoints=tuple(checkpoints),
            best_checkpoint=ranked[0] if ranked else None, latest_checkpoint=latest[0] if latest else None,
        )

    def _checkpoints_by_trial(self) -> dict[int, list[Checkpoint]]:
        by_trial: dict[int, list[Checkpoint]] = {}
        for checkpoint in self.checkpoints():
            by_trial.setdefault(checkpoint.trial_id, []).append(checkpoint)
        return by_trial

    def _searcher_validations(self) -> dict[int, dict[int, float]]:
        return searcher_validations(self._metric_records("validation", None), self.metric)

    def _validation_metrics(self) -> dict[tuple[int, int], dict[str, Any]]:
        """(trial id, batches) -> the metrics of the last validation reported at that step."""
        return {(record.trial_id, record.batches): dict(record.metrics)
                for record in self._metric_records("validation", None)}

    def _metric_records(self, kind: str | None, trial_id: int | None) -> list[MetricRecord]:
        return self.storage.metrics(experiment_id=self.id, kind=kind, trial_id=trial_id)

    def _require_trial(self, trial_id: int) -> None:
        if self.storage.get_trial(trial_id).experiment_id != self.id:
            raise RecordNotFound(f"experiment {self.id} has no trial {trial_id!r}")


def list_experiments(storage: str | Storage | None = None) -> list[Experiment]:
    """Every experiment in the storage (a URL, a Storage, or None for the default store), oldest first."""
    opened, _ = resolve_storage(storage)
    return [Experiment(opened, record) for record in opened.list_experiments()]


def resolve_storage(storage: str | Storage | None) -> tuple[Storage, bool]:
    """The Storage to read, and whether it was opened here (so its owner must close it)."""
    if isinstance(storage, Storage):
        return storage, False
    if storage is None or isinstance(storage, str):
        return open_storage(storage), True
    raise TypeError(f"storage must be a database URL, a Storage or None, but got {storage!r}")


def _checkpoint(record: CheckpointRecord, validations: Mapping[tuple[int, int], dict[str, Any]]) -> Checkpoint:
    return Checkpoint(
        id=record.id, trial_id=record.trial_id, batches=record.batches, epochs=record.epochs, path=Path(record.path),
        state=record.state, metadata=dict(record.metadata), created_at=record.created_at,
        validation=validations.get((record.trial_id, record.batches)),
    )


def _validation(entry: Mapping[str, Any] | None) -> Validation | None:
    return None if entry is None else Validation(entry["value"], entry["batches"], entry["epochs"])


def _frame_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    columns = dict.fromkeys(METRIC_FRAME_COLUMNS)
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)
