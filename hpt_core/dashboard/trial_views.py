"""The data of a trial's page: its record and checkpoints, its metrics over time, the tail of its log."""

from __future__ import annotations

import math
from typing import Any

from hpt_core.dashboard.downsample import downsample
from hpt_core.dashboard.params import choice
from hpt_core.space import flatten
from hpt_core.storage import CheckpointState, MetricKind, Storage, trial_log
from hpt_core.storage import queries

def trial_detail(storage: Storage, trial_id: int) -> dict[str, Any]:
    """A trial's record, its metric names and every checkpoint (with a download link while its files exist)."""
    trial = storage.get_trial(trial_id)
    parent = None
    if trial.parent_request_id is not None:
        parent = queries.trial_ids_by_request(storage, trial.experiment_id, [trial.parent_request_id]).get(
            trial.parent_request_id)
    checkpoints = [
        {"id": checkpoint.id, "batches": checkpoint.batches, "epochs": checkpoint.epochs, "length": checkpoint.length,
         "state": checkpoint.state, "created": checkpoint.created_at.isoformat(), "metadata": checkpoint.metadata,
         "download": f"/api/v1/checkpoints/{checkpoint.id}/download"
         if checkpoint.state == CheckpointState.COMPLETED else None}
        for checkpoint in storage.checkpoints(trial_id=trial_id, include_deleted=True)
    ]
    return {
        "id": trial.id, "experiment_id": trial.experiment_id, "request_id": trial.request_id, "state": trial.state,
        "end_reason": trial.end_reason, "hparams": flatten(trial.hparams), "restarts": trial.restarts,
        "length_done": trial.length_done, "length_trained": trial.length_trained, "target_length": trial.target_length,
        "started": None if trial.started_at is None else trial.started_at.isoformat(),
        "ended": None if trial.ended_at is None else trial.ended_at.isoformat(),
        "parent_trial_id": parent,
        "validation_metrics": sorted(queries.metric_names(storage, MetricKind.VALIDATION, trial_id=trial_id)),
        "training_metrics": sorted(queries.metric_names(storage, MetricKind.TRAINING, trial_id=trial_id)),
        "checkpoints": checkpoints,
    }


def trial_metrics(storage: Storage, trial_id: int, *, kind: str, max_points: int) -> dict[str, Any]:
    """Each metric of the trial's reports of `kind` as [batches, value] pairs (finite numbers only), downsampled."""
    storage.get_trial(trial_id)
    choice("kind", kind, [member.value for member in MetricKind])
    series: dict[str, list[list[float]]] = {}
    for record in storage.metrics(trial_id=trial_id, kind=kind):
        for name, value in record.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                series.setdefault(name, []).append([record.batches, value])
    return {"kind": kind, "series": {name: downsample(points, max_points) for name, points in sorted(series.items())}}


def trial_log_tail(storage: Storage, trial_id: int, *, tail_bytes: int) -> dict[str, Any]:
    """The last `tail_bytes` of the trial's output log (from whole lines), found through storage."""
    trial = storage.get_trial(trial_id)
    experiment_dir = storage.get_experiment(trial.experiment_id).experiment_dir
    path = trial_log(experiment_dir or ".", trial.id)
    try:
        with open(path, "rb") as log:
            size = log.seek(0, 2)
            log.seek(max(size - tail_bytes, 0))
            data = log.read(tail_bytes)
    except FileNotFoundError:
        return {"text": "", "truncated": False, "exists": False}
    truncated = size > tail_bytes
    if truncated and b"\n" in data:
        data = data[data.index(b"\n") + 1:]
    return {"text": data.decode("utf-8", errors="replace"), "truncated": truncated, "exists": True}
