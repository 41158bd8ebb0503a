"""Queries over many rows at once, aggregated in SQL, for views of large experiments (the dashboard).

Metrics and hyperparameters live in JSON columns; `json_number` reads one value of them as a float
(NULL when it is missing, not a number, or not finite, as `json_values` stores non-finite floats as
strings), the same way on SQLite and PostgreSQL. Each function runs one read transaction.

>>> import tempfile
>>> from hpt_core.storage import open_storage
>>> storage = open_storage(f"sqlite:///{tempfile.mkdtemp()}/hpt.db")
>>> experiment_id = storage.create_experiment(name="demo", config={}, model_dir=".", seed=0, secret="s")
>>> trial_id = storage.create_trial(experiment_id, request_id=1, hparams={"lr": 0.1}, seed=7)
>>> for batches, loss in [(10, 0.5), (20, 0.25), (30, 0.375)]:
...     _ = storage.add_metrics(trial_id, "validation", {"loss": loss}, batches=batches, epochs=1)
>>> trial_validations(storage, experiment_id, "loss", smaller_is_better=True)
[TrialValidation(trial_id=1, best=0.25, latest=0.375, batches=30, epochs=1)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    String,
    Subquery,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.engine import make_url

from hpt_core.storage import schema
from hpt_core.storage.store import Storage

#: Columns the trials page sorts by (besides `hp:<name>`), with what they mean.
TRIAL_SORT_COLUMNS = ("id", "state", "best_validation", "latest_validation", "batches", "restarts", "checkpoints")


@dataclass(frozen=True)
class TrialValidation:
    """A trial's searcher metric: its best and latest validation, and the step of the latest."""

    trial_id: int
    best: float
    latest: float
    batches: int
    epochs: int


@dataclass(frozen=True)
class Improvement:
    """A validation that beat every earlier one of the experiment."""

    trial_id: int
    value: float
    batches: int
    reported_at: datetime
    total_batches: int


@dataclass(frozen=True)
class TrialPageRow:
    """One row of the trials table."""

    id: int
    request_id: int
    state: str
    end_reason: str | None
    hparams: dict[str, Any]
    restarts: int
    length_done: int
    parent_request_id: int | None
    best_validation: float | None
    latest_validation: float | None
    batches: int | None
    epochs: int | None
    checkpoints: int


def json_number(storage: Storage, column: ColumnElement[Any], path: Sequence[str]) -> ColumnElement[float]:
    """The number at `path` (object keys) inside a JSON column, as a float; NULL if there is none."""
    element = _json_element(storage, column, path)
    if _dialect(storage) == "sqlite":
        return case((func.json_type(element).in_(("integer", "real")), cast(element, Float)), else_=None)
    return case((func.json_typeof(element) == "number", cast(cast(element, Text), Float)), else_=None)


def json_text(storage: Storage, column: ColumnElement[Any], path: Sequence[str]) -> ColumnElement[str]:
    """The JSON text of the value at `path` inside a JSON column (for ordering values that are not numbers)."""
    return cast(_json_element(storage, column, path), Text)


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


def trial_validations(storage: Storage, experiment_id: int, metric: str, *, smaller_is_better: bool,
                      limit: int | None = None) -> list[TrialValidation]:
    """Per trial with a finite validation of `metric`: its best and latest, best trial first (the lower id
    among equals); the first `limit` of them when given."""
    summary = _validation_summary(storage, experiment_id, metric, smaller_is_better)
    order = summary.c.best.asc() if smaller_is_better else summary.c.best.desc()
    query = select(summary).order_by(order, summary.c.trial_id).limit(limit)
    with storage.reading() as connection:
        return [TrialValidation(*row) for row in connection.execute(query)]


def best_validation(storage: Storage, experiment_id: int, metric: str, *,
                    smaller_is_better: bool) -> TrialValidation | None:
    """The trial whose best validation is best (the lower id among equals), or None."""
    best = trial_validations(storage, experiment_id, metric, smaller_is_better=smaller_is_better, limit=1)
    return best[0] if best else None


def trial_ids_by_request(storage: Storage, experiment_id: int, request_ids: Sequence[int]) -> dict[int, int]:
    """request id -> trial id, for those of `request_ids` that the experiment has."""
    trials = schema.trials
    query = select(trials.c.request_id, trials.c.id).where(trials.c.experiment_id == experiment_id,
                                                           trials.c.request_id.in_(list(request_ids)))
    with storage.reading() as connection:
        return dict(connection.execute(query).all())


def trial_hparams(storage: Storage, experiment_id: int) -> dict[int, dict[str, Any]]:
    """trial id -> hyperparameters, for every trial of the experiment."""
    trials = schema.trials
    query = select(trials.c.id, trials.c.hparams).where(trials.c.experiment_id == experiment_id)
    with storage.reading() as connection:
        return dict(connection.execute(query).all())


def improvements(storage: Storage, experiment_id: int, metric: str, *, smaller_is_better: bool) -> list[Improvement]:
    """The validations that beat all earlier ones, in the order reported.

    `total_batches` is the training all trials had reported by then, summed over their validations (each
    adds the batches trained since the trial's previous one; a step back, as after a restart, adds none).
    """
    rows = _metric_rows(storage, experiment_id, metric, "validation")
    trained = rows.c.batches - func.coalesce(
        func.lag(rows.c.batches).over(partition_by=rows.c.trial_id, order_by=rows.c.id), 0)
    with_increments = select(rows, case((trained > 0, trained), else_=0).label("increment")).subquery()
    earlier = (func.min if smaller_is_better else func.max)(with_increments.c.value).over(
        order_by=with_increments.c.id, rows=(None, -1))
    running = select(
        with_increments.c.id, with_increments.c.trial_id, with_increments.c.value, with_increments.c.batches,
        with_increments.c.reported_at, earlier.label("earlier_best"),
        func.sum(with_increments.c.increment).over(order_by=with_increments.c.id).label("total_batches"),
    ).subquery()
    beats = running.c.value < running.c.earlier_best if smaller_is_better else running.c.value > running.c.earlier_best
    query = (select(running.c.trial_id, running.c.value, running.c.batches, running.c.reported_at,
                    running.c.total_batches)
             .where(or_(running.c.earlier_best.is_(None), beats)).order_by(running.c.id))
    with storage.reading() as connection:
        return [Improvement(trial_id, value, batches, reported_at, int(total))
                for trial_id, value, batches, reported_at, total in connection.execute(query)]


def metric_series(storage: Storage, trial_ids: Sequence[int], metric: str, kind: str) -> dict[int, list[tuple[int, int, float]]]:
    """trial id -> (batches, epochs, value) of each finite report of `metric` of `kind`, oldest first."""
    metrics = schema.metrics
    value = json_number(storage, metrics.c.metrics, [metric])
    query = (select(metrics.c.trial_id, metrics.c.batches, metrics.c.epochs, value)
             .where(metrics.c.trial_id.in_(list(trial_ids)), metrics.c.kind == kind, value.is_not(None))
             .order_by(metrics.c.id))
    series: dict[int, list[tuple[int, int, float]]] = {trial_id: [] for trial_id in trial_ids}
    with storage.reading() as connection:
        for trial_id, batches, epochs, number in connection.execute(query):
            series[trial_id].append((batches, epochs, number))
    return series


def values_at_length(storage: Storage, experiment_id: int, metric: str, length: int | None) -> dict[int, float]:
    """trial id -> its validation of `metric` at the largest step <= `length` batches (None: its latest)."""
    rows = _metric_rows(storage, experiment_id, metric, "validation")
    if length is None:
        candidates, order = rows, [rows.c.id.desc()]
    else:
        candidates = select(rows).where(rows.c.batches <= length).subquery()
        order = [candidates.c.batches.desc(), candidates.c.id.desc()]
    place = func.row_number().over(partition_by=candidates.c.trial_id, order_by=order)
    ranked = select(candidates.c.trial_id, candidates.c.value, place.label("place")).subquery()
    query = select(ranked.c.trial_id, ranked.c.value).where(ranked.c.place == 1)
    with storage.reading() as connection:
        return dict(connection.execute(query).all())


def validation_lengths(storage: Storage, experiment_id: int, metric: str) -> list[int]:
    """The distinct steps (batches) at which some trial reported a finite validation of `metric`."""
    rows = _metric_rows(storage, experiment_id, metric, "validation")
    with storage.reading() as connection:
        return list(connection.execute(select(rows.c.batches).distinct().order_by(rows.c.batches)).scalars())


def metric_names(storage: Storage, kind: str, *, experiment_id: int | None = None,
                 trial_id: int | None = None) -> list[str]:
    """The metric names reported in reports of `kind`, by an experiment's trials or by one trial, sorted."""
    metrics, trials = schema.metrics, schema.trials
    keys = func.json_each(metrics.c.metrics).table_valued("key")
    query = select(keys.c.key).distinct().select_from(metrics).join(keys, literal(True)).where(metrics.c.kind == kind)
    if trial_id is not None:
        query = query.where(metrics.c.trial_id == trial_id)
    if experiment_id is not None:
        query = query.join(trials, trials.c.id == metrics.c.trial_id).where(trials.c.experiment_id == experiment_id)
    with storage.reading() as connection:
        return sorted(connection.execute(query).scalars())


def checkpoint_validations(storage: Storage, experiment_id: int, metric: str) -> dict[int, dict[int, float]]:
    """trial id -> batches -> the last finite validation of `metric` reported at the step of a kept checkpoint."""
    checkpoints = schema.checkpoints
    rows = _metric_rows(storage, experiment_id, metric, "validation")
    query = (select(rows.c.trial_id, rows.c.batches, rows.c.value)
             .where(select(checkpoints.c.id).where(checkpoints.c.trial_id == rows.c.trial_id,
                                                   checkpoints.c.batches == rows.c.batches,
                                                   checkpoints.c.state == "COMPLETED").exists())
             .order_by(rows.c.id))
    validations: dict[int, dict[int, float]] = {}
    with storage.reading() as connection:
        for trial_id, batches, value in connection.execute(query):
            validations.setdefault(trial_id, {})[batches] = value
    return validations


def trial_page(storage: Storage, experiment_id: int, metric: str, *, smaller_is_better: bool,
               states: Sequence[str], text: str | None, sort: str | Sequence[str], descending: bool,
               offset: int, limit: int) -> tuple[int, list[TrialPageRow]]:
    """How many trials match the filters, and one page of them sorted by `sort`.

    `sort` is one of TRIAL_SORT_COLUMNS, or a hyperparameter's key path (a sequence of names). Trials
    without a value in the sort column come last either way; ties go by id.
    """
    trials, checkpoints = schema.trials, schema.checkpoints
    summary = _validation_summary(storage, experiment_id, metric, smaller_is_better)
    kept = (select(checkpoints.c.trial_id, func.count().label("count"))
            .where(checkpoints.c.state == "COMPLETED").group_by(checkpoints.c.trial_id).subquery())
    checkpoint_count = func.coalesce(kept.c.count, 0)
    condition = _trial_filter(trials, experiment_id, states, text)
    columns: dict[str, list[ColumnElement[Any]]] = {
        "id": [trials.c.id], "state": [trials.c.state], "best_validation": [summary.c.best],
        "latest_validation": [summary.c.latest], "batches": [summary.c.batches], "restarts": [trials.c.restarts],
        "checkpoints": [checkpoint_count],
    }
    keys = columns[sort] if isinstance(sort, str) else [json_number(storage, trials.c.hparams, sort),
                                                         json_text(storage, trials.c.hparams, sort)]
    order: list[ColumnElement[Any]] = []
    for key in keys:
        order += [case((key.is_(None), 1), else_=0), key.desc() if descending else key.asc()]
    query = (select(trials.c.id, trials.c.request_id, trials.c.state, trials.c.end_reason, trials.c.hparams,
                    trials.c.restarts, trials.c.length_done, trials.c.parent_request_id, summary.c.best,
                    summary.c.latest, summary.c.batches, summary.c.epochs, checkpoint_count)
             .select_from(trials)
             .join(summary, summary.c.trial_id == trials.c.id, isouter=True)
             .join(kept, kept.c.trial_id == trials.c.id, isouter=True)
             .where(condition).order_by(*order, trials.c.id).offset(offset).limit(limit))
    with storage.reading() as connection:
        total = connection.execute(select(func.count()).select_from(trials).where(condition)).scalar_one()
        rows = [TrialPageRow(*row) for row in connection.execute(query)]
    return total, rows


def _trial_filter(trials: Any, experiment_id: int, states: Sequence[str], text: str | None) -> ColumnElement[bool]:
    condition = trials.c.experiment_id == experiment_id
    if states:
        condition = and_(condition, trials.c.state.in_(list(states)))
    if text:
        needle = text.lower()
        matches = [func.lower(cast(trials.c.hparams, Text)).contains(needle, autoescape=True),
                   func.lower(func.coalesce(trials.c.end_reason, "")).contains(needle, autoescape=True)]
        if needle.isdigit():
            matches.append(trials.c.id == int(needle))
        condition = and_(condition, or_(*matches))
    return condition


def _validation_summary(storage: Storage, experiment_id: int, metric: str, smaller_is_better: bool) -> Subquery:
    """trial_id, best, latest, batches, epochs of each trial with a finite validation of `metric`."""
    metrics = schema.metrics
    rows = _metric_rows(storage, experiment_id, metric, "validation")
    best = (func.min if smaller_is_better else func.max)(rows.c.value)
    grouped = select(rows.c.trial_id, best.label("best"), func.max(rows.c.id).label("latest_id")).group_by(
        rows.c.trial_id).subquery()
    latest = json_number(storage, metrics.c.metrics, [metric])
    return (select(grouped.c.trial_id, grouped.c.best, latest.label("latest"), metrics.c.batches, metrics.c.epochs)
            .join(metrics, metrics.c.id == grouped.c.latest_id).subquery())


def _metric_rows(storage: Storage, experiment_id: int, metric: str, kind: str) -> Subquery:
    """id, trial_id, batches, epochs, reported_at, value of the experiment's reports with a finite `metric`."""
    metrics, trials = schema.metrics, schema.trials
    value = json_number(storage, metrics.c.metrics, [metric])
    query: Select[Any] = (
        select(metrics.c.id, metrics.c.trial_id, metrics.c.batches, metrics.c.epochs, metrics.c.reported_at,
               value.label("value"))
        .join(trials, trials.c.id == metrics.c.trial_id)
        .where(trials.c.experiment_id == experiment_id, metrics.c.kind == kind, value.is_not(None))
    )
    return query.subquery()


def _json_element(storage: Storage, column: ColumnElement[Any], path: Sequence[str]) -> ColumnElement[Any]:
    """The JSON value at `path` (`column -> key -> ...`; SQLite reads a key starting with `$` as a path)."""
    sqlite = _dialect(storage) == "sqlite"
    element: ColumnElement[Any] = column
    for key in path:
        step = f'$."{key}"' if sqlite and key.startswith("$") else key
        element = element.op("->", return_type=String)(literal(step, String))
    return element


def _dialect(storage: Storage) -> str:
    return make_url(storage.url).get_backend_name()

