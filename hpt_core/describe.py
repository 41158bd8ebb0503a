"""What `hpt experiment describe` shows: the experiment, every trial, and the best trial."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from hpt_core.executors.local import recorded_start
from hpt_core.labels import trial_label
from hpt_core.plugins import length_unit
from hpt_core.space import flatten
from hpt_core.storage import LeaseRecord, Storage


def describe_experiment(storage: Storage, experiment_id: int) -> dict[str, Any]:
    """Plain data (JSON-ready) about an experiment and its trials."""
    experiment = storage.get_experiment(experiment_id)
    searcher = experiment.config["searcher"]
    metric, smaller_is_better = searcher["metric"], searcher.get("smaller_is_better", True)
    validations = _validations_by_trial(storage, experiment_id, metric)
    checkpoints = _checkpoints_by_trial(storage, experiment_id)
    trials = []
    for trial in storage.list_trials(experiment_id):
        values = validations.get(trial.id, [])
        best = _best(values, smaller_is_better)
        trials.append({
            "id": trial.id,
            "request_id": trial.request_id,
            "state": trial.state,
            "end_reason": trial.end_reason,
            "hparams": trial.hparams,
            "restarts": trial.restarts,
            "parent_request_id": trial.parent_request_id,
            "length_trained": trial.length_trained,
            "target_length": trial.target_length,
            "best_validation": best,
            "latest_validation": values[-1] if values else None,
            "checkpoints": checkpoints.get(trial.id, []),
            "start": recorded_start(experiment.experiment_dir, trial.id),
        })
    scored = [trial for trial in trials if trial["best_validation"] is not None]
    best_trial = None
    if scored:
        sign = 1 if smaller_is_better else -1
        best_trial = min(scored, key=lambda trial: (sign * trial["best_validation"]["value"], trial["id"]))["id"]
    return {
        "id": experiment.id,
        "name": experiment.name,
        "state": experiment.state,
        "searcher": searcher["name"],
        "metric": metric,
        "smaller_is_better": smaller_is_better,
        "length_unit": length_unit(experiment.config),
        "progress": experiment.progress,
        "model_dir": experiment.model_dir,
        "experiment_dir": experiment.experiment_dir,
        "uuid": experiment.uuid,
        "controller": _controller(storage.lease(experiment_id)),
        "created_at": experiment.created_at.isoformat(),
        "ended_at": experiment.ended_at.isoformat() if experiment.ended_at else None,
        "trials": trials,
        "best_trial": best_trial,
    }


def _controller(lease: LeaseRecord | None) -> dict[str, Any] | None:
    """Who holds the experiment's lease (None when no controller runs it)."""
    return None if lease is None else lease.holder()


def render_description(description: dict[str, Any], console: Console) -> None:
    metric = description["metric"]
    console.print(f"experiment {description['id']} {description['name']!r}: {description['state']}, "
                  f"searcher {description['searcher']}, progress {description['progress']:.0%}")
    console.print(f"results in {description['experiment_dir']}")
    controller = description["controller"]
    if controller is not None:
        expired = (f"; its lease expired at {controller['expires_at']}: `hpt experiment resume "
                   f"{description['id']}` takes the experiment over") if controller["expired"] else ""
        console.print(f"run by process {controller['pid']} on host {controller['host']} since "
                      f"{controller['since']}{expired}")
    table = Table(show_header=True)
    for column in ("trial", "state", "why it ended", "hyperparameters", "restarts", "length",
                   f"best {metric}", f"latest {metric}", "checkpoints", "start"):
        table.add_column(column)
    for trial in description["trials"]:
        hparams = ", ".join(f"{name}={_short(value)}" for name, value in flatten(trial["hparams"]).items())
        table.add_row(
            trial_label(trial["id"], trial["request_id"]), trial["state"], trial["end_reason"] or "", hparams,
            str(trial["restarts"]),
            str(trial["length_trained"]), _value(trial["best_validation"]), _value(trial["latest_validation"]),
            str(len(trial["checkpoints"])), (trial["start"] or {}).get("start", ""),
        )
    console.print(table)
    cold = {}
    for trial in description["trials"]:
        if trial["start"] is not None and trial["start"].get("start") == "cold":
            cold.setdefault(trial["start"]["start_note"], []).append(str(trial["id"]))
    for reason, trial_ids in cold.items():
        console.print(f"started cold (latest attempt), trial {', '.join(trial_ids)}: {reason}")
    best = next((trial for trial in description["trials"] if trial["id"] == description["best_trial"]), None)
    if best is not None:
        console.print(f"best trial: {trial_label(best['id'], best['request_id'], description['id'])}")



def _validations_by_trial(storage: Storage, experiment_id: int, metric: str) -> dict[int, list[dict[str, Any]]]:
    by_trial: dict[int, list[dict[str, Any]]] = {}
    for record in storage.metrics(experiment_id=experiment_id, kind="validation"):
        value = record.metrics.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            by_trial.setdefault(record.trial_id, []).append(
                {"value": value, "batches": record.batches, "epochs": record.epochs})
    return by_trial


def _checkpoints_by_trial(storage: Storage, experiment_id: int) -> dict[int, list[dict[str, Any]]]:
    by_trial: dict[int, list[dict[str, Any]]] = {}
    for checkpoint in storage.checkpoints(experiment_id=experiment_id):
        by_trial.setdefault(checkpoint.trial_id, []).append(
            {"id": checkpoint.id, "batches": checkpoint.batches, "epochs": checkpoint.epochs,
             "path": checkpoint.path, "state": checkpoint.state})
    return by_trial


def _best(values: list[dict[str, Any]], smaller_is_better: bool) -> dict[str, Any] | None:
    if not values:
        return None
    return (min if smaller_is_better else max)(values, key=lambda entry: entry["value"])


def _value(entry: dict[str, Any] | None) -> str:
    return "-" if entry is None else f"{entry['value']:.6g}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
