"""What the pages should show, read straight from storage (never from the dashboard's API)."""

from __future__ import annotations

import math
from hpt_core.storage import Storage


def validations(storage: Storage, experiment_id: int, metric: str) -> list[tuple[int, int, int, float]]:
    """(trial id, batches, epochs, value) of every finite validation of `metric`, in the order reported."""
    return [(record.trial_id, record.batches, record.epochs, float(record.metrics[metric]))
            for record in storage.metrics(experiment_id=experiment_id, kind="validation")
            if isinstance(record.metrics.get(metric), (int, float)) and math.isfinite(record.metrics[metric])]


def best_by_trial(storage: Storage, experiment_id: int, metric: str) -> dict[int, float]:
    """Each trial's smallest validation of `metric` (the test experiments minimise)."""
    best: dict[int, float] = {}
    for trial_id, _, _, value in validations(storage, experiment_id, metric):
        best[trial_id] = min(value, best.get(trial_id, math.inf))
    return best


def improvements(storage: Storage, experiment_id: int, metric: str) -> list[tuple[int, float]]:
    """(trial id, value) of each validation smaller than every earlier one."""
    points, best = [], math.inf
    for trial_id, _, _, value in validations(storage, experiment_id, metric):
        if value < best:
            best = value
            points.append((trial_id, value))
    return points


def curve_points(storage: Storage, experiment_id: int, metric: str, trial_id: int) -> list[tuple[int, float]]:
    """(batches, value) of one trial's validations of `metric`."""
    return [(batches, value) for trial, batches, _, value in validations(storage, experiment_id, metric)
            if trial == trial_id]


def trials_reaching(storage: Storage, experiment_id: int, metric: str, epochs: int) -> set[int]:
    """The trials that reported a validation after training at least `epochs` epochs."""
    return {trial_id for trial_id, _, trained, _ in validations(storage, experiment_id, metric) if trained >= epochs}


def lineage_edges(storage: Storage, experiment_id: int) -> set[tuple[int, int]]:
    """(parent trial id, child trial id) of every trial started from another."""
    trials = storage.list_trials(experiment_id)
    by_request = {trial.request_id: trial.id for trial in trials}
    return {(by_request[trial.parent_request_id], trial.id) for trial in trials if trial.parent_request_id is not None}


def varying_hyperparameters(storage: Storage, experiment_id: int) -> list[str]:
    """The dotted names of the experiment's hyperparameters that are searched (not const)."""
    names = []

    def walk(node: dict, prefix: str) -> None:
        for name, value in node.items():
            if isinstance(value, dict) and isinstance(value.get("type"), str):
                if value["type"] != "const":
                    names.append(prefix + name)
            elif isinstance(value, dict):
                walk(value, f"{prefix}{name}.")

    walk(storage.get_experiment(experiment_id).config["hyperparameters"], "")
    return sorted(names)


def trial_values(storage: Storage, experiment_id: int) -> dict[int, dict]:
    """Each trial's hyperparameters, flattened to dotted names."""
    def flatten(node: dict, prefix: str = "") -> dict:
        flat = {}
        for name, value in node.items():
            if isinstance(value, dict):
                flat.update(flatten(value, f"{prefix}{name}."))
            else:
                flat[prefix + name] = value
        return flat

    return {trial.id: flatten(trial.hparams) for trial in storage.list_trials(experiment_id)}

