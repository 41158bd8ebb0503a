"""The data of the experiments list and of an experiment's page (plain JSON-ready dicts)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from numbers import Real
from typing import Any

from hpt_core.dashboard.downsample import downsample
from hpt_core.dashboard.hyperparameters import hyperparameter_columns
from hpt_core.dashboard.params import BadParameter, choice
from hpt_core.dashboard.state import DashboardState, SearcherMetric, TrialHparams
from hpt_core.dashboard.validation_index import TrialValidations, ValidationIndex
from hpt_core.plugins import length_unit
from hpt_core.storage import ExperimentRecord, MetricKind, TrialState
from hpt_core.storage import queries

HYPERPARAMETER_SORT_PREFIX = "hp:"
#: The trials table's columns it sorts by, besides `hp:<hyperparameter name>`.
TRIAL_SORT_COLUMNS = ("id", "state", "best_validation", "latest_validation", "batches", "restarts", "checkpoints")


def experiment_list(state: DashboardState) -> dict[str, Any]:
    """Every experiment's summary, newest first."""
    counts = queries.trial_states_by_experiment(state.storage)
    records = sorted(queries.experiment_records(state.storage), key=lambda record: record.id, reverse=True)
    return {"experiments": [experiment_summary(state, record, counts.get(record.id, {})) for record in records]}


def experiment_summary(state: DashboardState, record: ExperimentRecord,
                       trials_by_state: dict[str, int]) -> dict[str, Any]:
    """What the experiments list shows of one experiment."""
    metric = SearcherMetric.of(record)
    index = state.validations(record)
    with index.lock:
        ranking = index.ranking()
        best_trial = ranking[0] if ranking else None
        best_metric = None if best_trial is None else index.trials[best_trial].best
    ended = record.ended_at
    return {
        "id": record.id, "name": record.name, "state": record.state,
        "searcher": record.config.get("searcher", {}).get("name"), "metric": metric.name,
        "smaller_is_better": metric.smaller_is_better, "progress": record.progress,
        "trials_by_state": dict(sorted(trials_by_state.items())), "trial_count": sum(trials_by_state.values()),
        "best_metric": best_metric, "best_trial_id": best_trial,
        "started": record.created_at.isoformat(), "ended": None if ended is None else ended.isoformat(),
        "duration_seconds": ((ended or datetime.now(UTC)) - record.created_at).total_seconds(),
    }


def experiment_detail(state: DashboardState, experiment_id: int) -> dict[str, Any]:
    """The experiment page's header: the summary, its config, hyperparameters, metric names and who runs it."""
    record = state.experiment(experiment_id)
    counts = queries.trial_states_by_experiment(state.storage).get(experiment_id, {})
    summary = experiment_summary(state, record, counts)
    lease = state.storage.lease(experiment_id)
    return {
        **summary,
        "description": record.description, "config": record.config,
        "length_unit": length_unit(record.config),
        "hyperparameters": hyperparameter_columns(record.config.get("hyperparameters", {})),
        "validation_metrics": state.validations(record).names(state.storage), "writable": state.writable,
        "controller": None if lease is None else lease.holder(),
        "best_trial_number": None if summary["best_trial_id"] is None
        else state.storage.get_trial(summary["best_trial_id"]).request_id,
    }


def best_over_time(state: DashboardState, experiment_id: int, *, metric: str | None = None) -> dict[str, Any]:
    """Each validation of `metric` (default: the searcher metric) that beat every earlier one, with its trial,
    time and the training done by then (in the searcher metric's direction)."""
    record = state.experiment(experiment_id)
    index = state.validations(record, metric)
    with index.lock:
        improvements = list(index.improvements)
    times = queries.reported_at(state.storage, [point.metric_id for point in improvements])
    return {"metric": index.metric, "smaller_is_better": index.smaller_is_better, "points": [
        {"trial_id": point.trial_id, "value": point.value, "batches": point.batches,
         "seconds": (times[point.metric_id] - record.created_at).total_seconds(),
         "reported_at": times[point.metric_id].isoformat(), "total_batches": point.total_batches}
        for point in improvements if point.metric_id in times]}


def trials_page(state: DashboardState, experiment_id: int, *, offset: int, limit: int, sort: str, order: str,
                states: list[str], text: str | None) -> dict[str, Any]:
    """One page of the trials table, filtered by state and by text (the trial's id, or part of a hyperparameter's
    name or value or of the end reason, case aside) and sorted by a column (missing values last, ties by id)."""
    record = state.experiment(experiment_id)
    names = [column["name"] for column in hyperparameter_columns(record.config.get("hyperparameters", {}))]
    choice("sort", sort, [*TRIAL_SORT_COLUMNS, *(HYPERPARAMETER_SORT_PREFIX + name for name in names)])
    choice("order", order, ("asc", "desc"))
    for trial_state in states:
        choice("state", trial_state, [member.value for member in TrialState])
    trials = queries.trial_rows(state.storage, experiment_id)
    parents = {trial.request_id: trial.id for trial in trials}
    hparams = state.hparams.get(state.storage, record, [trial.id for trial in trials])
    checkpoints = queries.checkpoint_counts(state.storage, experiment_id)
    if states:
        trials = [trial for trial in trials if trial.state in states]
    if text:
        needle = text.strip().lower()
        trials = [trial for trial in trials if needle == str(trial.id) or needle in hparams[trial.id].text
                  or needle in (trial.end_reason or "").lower()]
    index = state.validations(record)
    with index.lock:
        columns = _sort_columns(index, hparams, checkpoints)
        key = columns.get(sort) or _hyperparameter(hparams, sort.removeprefix(HYPERPARAMETER_SORT_PREFIX))
        present = [trial for trial in trials if key(trial) is not None]
        present.sort(key=lambda trial: _sort_key(key(trial)), reverse=order == "desc")  # stable: ties keep id order
        ordered = present + [trial for trial in trials if key(trial) is None]
        page = [_trial_row(trial, hparams[trial.id].flat, index.trials.get(trial.id), checkpoints.get(trial.id, 0),
                           parents) for trial in ordered[offset:offset + limit]]
    return {"total": len(ordered), "offset": offset, "limit": limit, "trials": page}


SortColumn = Callable[[queries.TrialRow], Any]


def _sort_columns(index: ValidationIndex, hparams: dict[int, TrialHparams],
                  checkpoints: dict[int, int]) -> dict[str, SortColumn]:
    def validation(field: str) -> SortColumn:
        return lambda trial: None if trial.id not in index.trials else getattr(index.trials[trial.id], field)

    return {"id": lambda trial: trial.id, "state": lambda trial: trial.state,
            "best_validation": validation("best"), "latest_validation": validation("latest"),
            "batches": validation("batches"), "restarts": lambda trial: trial.restarts,
            "checkpoints": lambda trial: checkpoints.get(trial.id, 0)}


def _hyperparameter(hparams: dict[int, TrialHparams], name: str) -> SortColumn:
    return lambda trial: hparams[trial.id].flat.get(name)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before text."""
    if isinstance(value, Real):
        return (0, float(value))
    return (1, value if isinstance(value, str) else json.dumps(value, sort_keys=True))


def _trial_row(trial: queries.TrialRow, hparams: dict[str, Any], validations: TrialValidations | None,
               checkpoints: int, parents: dict[int, int]) -> dict[str, Any]:
    return {
        "id": trial.id, "request_id": trial.request_id, "state": trial.state, "end_reason": trial.end_reason,
        "hparams": hparams, "best_validation": None if validations is None else validations.best,
        "latest_validation": None if validations is None else validations.latest,
        "batches": None if validations is None else validations.batches,
        "epochs": None if validations is None else validations.epochs, "length_done": trial.length_done,
        "length_trained": trial.length_trained, "restarts": trial.restarts, "checkpoints": checkpoints,
        "parent_trial_id": None if trial.parent_request_id is None else parents.get(trial.parent_request_id),
    }


def learning_curves(state: DashboardState, experiment_id: int, *, metric: str | None, kind: str, top: int, x: str,
                    max_points: int) -> dict[str, Any]:
    """The curves of `metric` (reports of `kind`) of the `top` trials with the best searcher metric, best first."""
    record = state.experiment(experiment_id)
    choice("kind", kind, [member.value for member in MetricKind])
    choice("x", x, ("batches", "epochs"))
    index = state.validations(record)
    with index.lock:
        best = [(trial_id, index.trials[trial_id].best) for trial_id in index.ranking()[:top]]
    name = metric or index.metric
    series = queries.metric_series(state.storage, [trial_id for trial_id, _ in best], name, kind)
    position = 0 if x == "batches" else 1
    return {"metric": name, "kind": kind, "x": x, "series": [
        {"trial_id": trial_id, "best": value,
         "points": downsample([[point[position], point[2]] for point in series[trial_id]], max_points)}
        for trial_id, value in best]}


def hyperparameter_values(state: DashboardState, experiment_id: int, *, metric: str | None,
                          length: int | None) -> dict[str, Any]:
    """Each trial's hyperparameters and its validation of `metric` at a training length (batches)."""
    record = state.experiment(experiment_id)
    if length is not None and length < 0:
        raise BadParameter("length", length, "a number of batches of at least 0")
    index = state.validations(record, metric)
    with index.lock:
        values = {trial_id: index.value_at(trial_id, length) for trial_id in index.trials}
        lengths = sorted(index.lengths)
    values = {trial_id: value for trial_id, value in values.items() if value is not None}
    hparams = state.hparams.get(state.storage, record, sorted(values))
    return {
        "metric": index.metric, "length": length, "lengths": lengths,
        "hyperparameters": hyperparameter_columns(record.config.get("hyperparameters", {})),
        "trials": [{"trial_id": trial_id, "hparams": hparams[trial_id].flat, "value": values[trial_id]}
                   for trial_id in sorted(values) if trial_id in hparams],
    }
