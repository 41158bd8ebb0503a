"""The data of the experiments list and of an experiment's page, built from storage (plain JSON-ready dicts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hpt_core.dashboard.downsample import downsample
from hpt_core.dashboard.hyperparameters import hyperparameter_columns
from hpt_core.dashboard.params import BadParameter, choice
from hpt_core.space import flatten
from hpt_core.storage import ExperimentRecord, MetricKind, Storage, TrialState
from hpt_core.storage import queries

HYPERPARAMETER_SORT_PREFIX = "hp:"


@dataclass(frozen=True)
class SearcherMetric:
    """The metric an experiment's search method optimises, and its direction."""

    name: str
    smaller_is_better: bool

    @classmethod
    def of(cls, record: ExperimentRecord) -> SearcherMetric:
        searcher = record.config.get("searcher", {})
        return cls(searcher.get("metric", ""), searcher.get("smaller_is_better", True))


def experiment_list(storage: Storage) -> dict[str, Any]:
    """Every experiment's summary, newest first."""
    counts = queries.trial_states_by_experiment(storage)
    records = sorted(storage.list_experiments(), key=lambda record: record.id, reverse=True)
    return {"experiments": [experiment_summary(storage, record, counts.get(record.id, {})) for record in records]}


def experiment_summary(storage: Storage, record: ExperimentRecord, trials_by_state: dict[str, int]) -> dict[str, Any]:
    """What the experiments list shows of one experiment."""
    metric = SearcherMetric.of(record)
    best = queries.best_validation(storage, record.id, metric.name, smaller_is_better=metric.smaller_is_better)
    ended = record.ended_at
    return {
        "id": record.id, "name": record.name, "state": record.state,
        "searcher": record.config.get("searcher", {}).get("name"), "metric": metric.name,
        "smaller_is_better": metric.smaller_is_better, "progress": record.progress,
        "trials_by_state": dict(sorted(trials_by_state.items())), "trial_count": sum(trials_by_state.values()),
        "best_metric": None if best is None else best.best, "best_trial_id": None if best is None else best.trial_id,
        "started": record.created_at.isoformat(), "ended": None if ended is None else ended.isoformat(),
        "duration_seconds": ((ended or datetime.now(UTC)) - record.created_at).total_seconds(),
    }


def experiment_detail(storage: Storage, experiment_id: int, *, writable: bool) -> dict[str, Any]:
    """The experiment page's header: the summary, its config, hyperparameters and metric names."""
    record = storage.get_experiment(experiment_id)
    counts = queries.trial_states_by_experiment(storage).get(experiment_id, {})
    searcher = record.config.get("searcher", {})
    length = searcher.get("max_length") or searcher.get("length_per_round") or {"batches": 0}
    return {
        **experiment_summary(storage, record, counts),
        "description": record.description, "config": record.config,
        "length_unit": next(iter(length)) if isinstance(length, dict) else "batches",
        "hyperparameters": hyperparameter_columns(record.config.get("hyperparameters", {})),
        "validation_metrics": queries.metric_names(storage, MetricKind.VALIDATION, experiment_id=experiment_id),
        "writable": writable,
    }


def best_over_time(storage: Storage, experiment_id: int) -> dict[str, Any]:
    """Each validation that beat every earlier one, with its trial, time and the training done by then."""
    record = storage.get_experiment(experiment_id)
    metric = SearcherMetric.of(record)
    points = [
        {"trial_id": point.trial_id, "value": point.value, "batches": point.batches,
         "seconds": (point.reported_at - record.created_at).total_seconds(),
         "reported_at": point.reported_at.isoformat(), "total_batches": point.total_batches}
        for point in queries.improvements(storage, experiment_id, metric.name,
                                          smaller_is_better=metric.smaller_is_better)
    ]
    return {"metric": metric.name, "smaller_is_better": metric.smaller_is_better, "points": points}


def trials_page(storage: Storage, experiment_id: int, *, offset: int, limit: int, sort: str, order: str,
                states: list[str], text: str | None) -> dict[str, Any]:
    """One page of the trials table, filtered by state and text and sorted by a column."""
    record = storage.get_experiment(experiment_id)
    metric = SearcherMetric.of(record)
    columns = {column["name"]: column["path"] for column in hyperparameter_columns(record.config.get("hyperparameters", {}))}
    allowed = [*queries.TRIAL_SORT_COLUMNS, *(HYPERPARAMETER_SORT_PREFIX + name for name in columns)]
    if sort.startswith(HYPERPARAMETER_SORT_PREFIX):
        key: str | list[str] = columns.get(sort.removeprefix(HYPERPARAMETER_SORT_PREFIX)) or []
        if not key:
            choice("sort", sort, allowed)
    else:
        key = choice("sort", sort, allowed)
    choice("order", order, ("asc", "desc"))
    for state in states:
        choice("state", state, [member.value for member in TrialState])
    total, rows = queries.trial_page(storage, experiment_id, metric.name, smaller_is_better=metric.smaller_is_better,
                                     states=states, text=text, sort=key, descending=order == "desc",
                                     offset=offset, limit=limit)
    parents = queries.trial_ids_by_request(storage, experiment_id,
                                           [row.parent_request_id for row in rows if row.parent_request_id is not None])
    return {"total": total, "offset": offset, "limit": limit, "trials": [
        {"id": row.id, "request_id": row.request_id, "state": row.state, "end_reason": row.end_reason,
         "hparams": flatten(row.hparams), "best_validation": row.best_validation,
         "latest_validation": row.latest_validation, "batches": row.batches, "epochs": row.epochs,
         "length_done": row.length_done, "restarts": row.restarts, "checkpoints": row.checkpoints,
         "parent_trial_id": parents.get(row.parent_request_id)}
        for row in rows]}


def learning_curves(storage: Storage, experiment_id: int, *, metric: str | None, kind: str, top: int, x: str,
                    max_points: int) -> dict[str, Any]:
    """The curves of `metric` (reports of `kind`) of the `top` trials with the best searcher metric."""
    record = storage.get_experiment(experiment_id)
    searcher_metric = SearcherMetric.of(record)
    choice("kind", kind, [member.value for member in MetricKind])
    choice("x", x, ("batches", "epochs"))
    best = queries.trial_validations(storage, experiment_id, searcher_metric.name,
                                     smaller_is_better=searcher_metric.smaller_is_better, limit=top)
    name = metric or searcher_metric.name
    series = queries.metric_series(storage, [trial.trial_id for trial in best], name, kind)
    position = 0 if x == "batches" else 1
    return {"metric": name, "kind": kind, "x": x, "series": [
        {"trial_id": trial.trial_id, "best": trial.best,
         "points": downsample([[point[position], point[2]] for point in series[trial.trial_id]], max_points)}
        for trial in best]}


def hyperparameter_values(storage: Storage, experiment_id: int, *, metric: str | None,
                          length: int | None) -> dict[str, Any]:
    """Each trial's hyperparameters and its validation of `metric` at a training length (batches)."""
    record = storage.get_experiment(experiment_id)
    name = metric or SearcherMetric.of(record).name
    if length is not None and length < 0:
        raise BadParameter("length", length, "a number of batches of at least 0")
    values = queries.values_at_length(storage, experiment_id, name, length)
    hparams = queries.trial_hparams(storage, experiment_id)
    return {
        "metric": name, "length": length, "lengths": queries.validation_lengths(storage, experiment_id, name),
        "hyperparameters": hyperparameter_columns(record.config.get("hyperparameters", {})),
        "trials": [{"trial_id": trial_id, "hparams": flatten(hparams[trial_id]), "value": value}
                   for trial_id, value in sorted(values.items()) if trial_id in hparams],
    }
