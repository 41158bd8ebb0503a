"""Read queries for views of large experiments (the dashboard): narrow columns, many rows, one round trip each.

Metrics live in a JSON column; `json_number` reads one metric of it in SQL as a float (NULL when it is
missing, not a number, or not finite, since `json_values` stores non-finite floats as strings), the
same way on SQLite and PostgreSQL, so that a view reads one number per report instead of every report.

>>> import tempfile
>>> from hpt_core.storage import open_storage
>>> storage = open_storage(f"sqlite:///{tempfile.mkdtemp()}/hpt.db")
>>> experiment_id = storage.create_experiment(name="demo", config={}, model_dir=".", seed=0, secret="s")
>>> trial_id = storage.create_trial(experiment_id, request_id=1, hparams={"lr": 0.1}, seed=7)
>>> for batches, loss in [(10, 0.5), (20, "NaN"), (30, float("inf"))]:
...     _ = storage.add_metrics(trial_id, "validation", {"loss": loss}, batches=batches, epochs=1)
>>> [(row.batches, row.value) for row in validations_after(storage, experiment_id, "loss", after_id=0)]
[(10, 0.5), (20, None), (30, None)]
>>> validation_stamp(storage, experiment_id)
(3, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Float, String, Text, case, cast, func, literal, select
from sqlalchemy.engine import make_url

from hpt_core.storage import schema
from hpt_core.storage.checks import check_record_id
from hpt_core.storage.records import ExperimentRecord
from hpt_core.storage.states import CheckpointState, MetricKind
from hpt_core.storage.store import Storage

#: How many ids one `IN (...)` list holds at most.
ID_CHUNK = 5000


class ValidationRow(NamedTuple):
    """One validation report reduced to one metric (`value` None when it is not a finite number)."""

    id: int
    trial_id: int
    batches: int
    epochs: int
    value: float | None


@dataclass(frozen=True)
class TrialRow:
    """A trial's columns that change while it runs (its hyperparameters do not, see `trial_hparams`)."""

    id: int
    request_id: int
    state: str
    end_reason: str | None
    restarts: int
    length_done: int
    length_trained: int
    target_length: int | None
    parent_request_id: int | None


def json_number(storage: Storage, column: ColumnElement[Any], name: str) -> ColumnElement[float]:
    """The number under the key `name` of a JSON object column, as a float; NULL if there is none.

    The name is bound as data, never spliced into a JSON path, so any name works: dots, quotes, brackets,
    `$`, non-ASCII. SQLite looks the key up among the object's entries (`json_each`), since its path syntax
    cannot spell every key (nor match keys stored escaped, as non-ASCII ones are); PostgreSQL's `->` takes
    the key itself.
    """
    if _dialect(storage) == "sqlite":
        entries = func.json_each(column).table_valued("key", "value", "type")
        return (select(case((entries.c.type.in_(("integer", "real")), cast(entries.c.value, Float)), else_=None))
                .where(entries.c.key == name).scalar_subquery())
    element = column.op("->", return_type=String)(literal(name, String))
    return case((func.json_typeof(element) == "number", cast(cast(element, Text), Float)), else_=None)


def experiment_records(storage: Storage, experiment_id: int | None = None) -> list[ExperimentRecord]:
    """Every experiment (or the one with this id), oldest first, without its searcher state (which can be large);
    RecordNotFound for an id that no experiment can have (`check_record_id`)."""
    table = schema.experiments
    columns = [column for column in table.c if column.name != "searcher_state"]
    query = select(*columns).order_by(table.c.id)
    if experiment_id is not None:
        query = query.where(table.c.id == check_record_id(experiment_id, "experiment"))
    with storage.reading() as connection:
        rows = connection.execute(query).mappings().all()
    return [ExperimentRecord.from_row({**row, "searcher_state": None}) for row in rows]


def trial_states_by_experiment(storage: Storage) -> dict[int, dict[str, int]]:
    """experiment id -> trial state -> how many of its trials are in it."""
    trials = schema.trials
    query = select(trials.c.experiment_id, trials.c.state, func.count()).group_by(trials.c.experiment_id,
                                                                                 trials.c.state)
    counts: dict[int, dict[str, int]] = {}
    with storage.reading() as connection:
        for experiment_id, state, count in connection.execute(query):
            counts.setdefault(experiment_id, {})[state] = count
    return counts


def searcher_log_length(storage: Storage, experiment_id: int) -> int:
    """How many entries the experiment's searcher log has (its highest seq; 0 if none)."""
    table = schema.searcher_records
    query = select(func.coalesce(func.max(table.c.seq), 0)).where(table.c.experiment_id == experiment_id)
    with storage.reading() as connection:
        return int(connection.execute(query).scalar_one())


def searcher_state(storage: Storage, experiment_id: int) -> dict[str, Any] | None:
    """The experiment's stored searcher state (None before the search method first saved it)."""
    table = schema.experiments
    with storage.reading() as connection:
        return connection.execute(select(table.c.searcher_state).where(table.c.id == experiment_id)).scalar_one()


def trial_rows(storage: Storage, experiment_id: int) -> list[TrialRow]:
    """The experiment's trials in order of id (their hyperparameters left out)."""
    trials = schema.trials
    query = (select(trials.c.id, trials.c.request_id, trials.c.state, trials.c.end_reason, trials.c.restarts,
                    trials.c.length_done, trials.c.length_trained, trials.c.target_length,
                    trials.c.parent_request_id)
             .where(trials.c.experiment_id == experiment_id).order_by(trials.c.id))
    with storage.reading() as connection:
        return [TrialRow(*row) for row in connection.execute(query)]


def trial_hparams(storage: Storage, experiment_id: int, trial_ids: Sequence[int] | None = None,
                  ) -> dict[int, dict[str, Any]]:
    """trial id -> hyperparameters, for the experiment's trials (or those of `trial_ids`)."""
    trials = schema.trials
    query = select(trials.c.id, trials.c.hparams).where(trials.c.experiment_id == experiment_id)
    with storage.reading() as connection:
        if trial_ids is None:
            return dict(connection.execute(query).all())
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(trial_ids), ID_CHUNK):
            found.update(connection.execute(query.where(trials.c.id.in_(trial_ids[start:start + ID_CHUNK]))).all())
        return found


def trial_ids_by_request(storage: Storage, experiment_id: int, request_ids: Sequence[int]) -> dict[int, int]:
    """request id -> trial id, for those of `request_ids` that the experiment has."""
    trials = schema.trials
    query = select(trials.c.request_id, trials.c.id).where(trials.c.experiment_id == experiment_id,
                                                           trials.c.request_id.in_(list(request_ids)))
    with storage.reading() as connection:
        return dict(connection.execute(query).all())


def checkpoint_counts(storage: Storage, experiment_id: int) -> dict[int, int]:
    """trial id -> how many of its checkpoints still have their files (state COMPLETED)."""
    checkpoints, trials = schema.checkpoints, schema.trials
    query = (select(checkpoints.c.trial_id, func.count())
             .join(trials, trials.c.id == checkpoints.c.trial_id)
             .where(trials.c.experiment_id == experiment_id, checkpoints.c.state == CheckpointState.COMPLETED.value)
             .group_by(checkpoints.c.trial_id))
    with storage.reading() as connection:
        return dict(connection.execute(query).all())


class CheckpointStep(NamedTuple):
    """Where a checkpoint is: its id, trial and step."""

    id: str
    trial_id: int
    batches: int


def checkpoint_steps(storage: Storage, experiment_id: int) -> list[CheckpointStep]:
    """The experiment's checkpoints that still have their files, in order of creation (as `Storage.checkpoints`)."""
    checkpoints, trials = schema.checkpoints, schema.trials
    query = (select(checkpoints.c.id, checkpoints.c.trial_id, checkpoints.c.batches)
             .join(trials, trials.c.id == checkpoints.c.trial_id)
             .where(trials.c.experiment_id == experiment_id, checkpoints.c.state == CheckpointState.COMPLETED.value)
             .order_by(checkpoints.c.created_at, checkpoints.c.id))
    with storage.reading() as connection:
        return [CheckpointStep._make(row) for row in connection.execute(query)]


def validation_stamp(storage: Storage, experiment_id: int) -> tuple[int, int]:
    """How many validation reports the experiment's trials made, and the highest id among them (0 if none)."""
    metrics, trials = schema.metrics, schema.trials
    query = (select(func.count(), func.coalesce(func.max(metrics.c.id), 0))
             .join(trials, trials.c.id == metrics.c.trial_id)
             .where(trials.c.experiment_id == experiment_id, metrics.c.kind == MetricKind.VALIDATION.value))
    with storage.reading() as connection:
        count, highest = connection.execute(query).one()
    return int(count), int(highest)


def validations_after(storage: Storage, experiment_id: int, metric: str, *, after_id: int,
                      up_to_id: int | None = None) -> list[ValidationRow]:
    """The experiment's validation reports with after_id < id (<= up_to_id), in order of id, reduced to `metric`."""
    metrics, trials = schema.metrics, schema.trials
    query = (select(metrics.c.id, metrics.c.trial_id, metrics.c.batches, metrics.c.epochs,
                    json_number(storage, metrics.c.metrics, metric))
             .join(trials, trials.c.id == metrics.c.trial_id)
             .where(trials.c.experiment_id == experiment_id, metrics.c.kind == MetricKind.VALIDATION.value,
                    metrics.c.id > after_id)
             .order_by(metrics.c.id))
    if up_to_id is not None:
        query = query.where(metrics.c.id <= up_to_id)
    with storage.reading() as connection:
        return [ValidationRow._make(row) for row in connection.execute(query)]


def reported_at(storage: Storage, metric_ids: Sequence[int]) -> dict[int, datetime]:
    """metric report id -> when it was reported."""
    metrics = schema.metrics
    found: dict[int, datetime] = {}
    with storage.reading() as connection:
        for start in range(0, len(metric_ids), ID_CHUNK):
            chunk = list(metric_ids[start:start + ID_CHUNK])
            found.update(connection.execute(select(metrics.c.id, metrics.c.reported_at)
                                            .where(metrics.c.id.in_(chunk))).all())
    return found


def metric_names(storage: Storage, kind: str, *, experiment_id: int | None = None, trial_id: int | None = None,
                 after_id: int = 0, up_to_id: int | None = None) -> set[str]:
    """The metric names in reports of `kind` (with after_id < id <= up_to_id) of an experiment's trials or of one
    trial."""
    metrics, trials = schema.metrics, schema.trials
    keys = func.json_each(metrics.c.metrics).table_valued("key")
    query = (select(keys.c.key).distinct().select_from(metrics).join(keys, literal(True))
             .where(metrics.c.kind == kind, metrics.c.id > after_id))
    if up_to_id is not None:
        query = query.where(metrics.c.id <= up_to_id)
    if trial_id is not None:
        query = query.where(metrics.c.trial_id == trial_id)
    if experiment_id is not None:
        query = query.join(trials, trials.c.id == metrics.c.trial_id).where(trials.c.experiment_id == experiment_id)
    with storage.reading() as connection:
        return set(connection.execute(query).scalars())


def metric_series(storage: Storage, trial_ids: Sequence[int], metric: str, kind: str,
                  ) -> dict[int, list[tuple[int, int, float]]]:
    """trial id -> (batches, epochs, value) of each finite report of `metric` among its reports of `kind`."""
    metrics = schema.metrics
    value = json_number(storage, metrics.c.metrics, metric)
    query = (select(metrics.c.trial_id, metrics.c.batches, metrics.c.epochs, value)
             .where(metrics.c.trial_id.in_(list(trial_ids)), metrics.c.kind == kind, value.is_not(None))
             .order_by(metrics.c.id))
    series: dict[int, list[tuple[int, int, float]]] = {trial_id: [] for trial_id in trial_ids}
    with storage.reading() as connection:
        for trial_id, batches, epochs, number in connection.execute(query):
            series[trial_id].append((batches, epochs, number))
    return series


def _dialect(storage: Storage) -> str:
    return make_url(storage.url).get_backend_name()
