"""Copy checkpoints out of hpt: each into a folder of its own files plus `hpt_export.json`, which says what it is.

`hpt_export.json` is plain JSON (no hpt needed to read it): the checkpoint (id, batches, epochs,
metadata), its trial (id, request id, state, hyperparameters, seed, parent), its experiment (id,
name, searcher, metric, direction) and the metrics reported at its step (`validation` and
`training`, each null if none was). Files are copied only from the folders that storage recorded
for the checkpoints (local folders, or fsspec URLs such as s3://, downloaded); symbolic links inside a
local checkpoint are copied as links, never followed. A
folder appears under its final name only once it is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hpt_core import checkpoint_storage
from hpt_core.checkpoint_gc import is_local_path, rank_by_step, rank_by_validation, searcher_validations
from hpt_core.errors import ConfigError, Problem
from hpt_core.storage import CheckpointRecord, RecordNotFound, Storage

EXPORT_METADATA_FILE = "hpt_export.json"
EXPORT_INDEX_FILE = "index.json"
EXPORT_FORMAT = "hpt-checkpoint-export/1"


@dataclass(frozen=True)
class ExportedCheckpoint:
    """A checkpoint written out: where, and the facts of `hpt_export.json`."""

    path: Path
    metadata: dict[str, Any]


def trial_checkpoint(storage: Storage, trial_id: int, which: Literal["best", "latest"] | str) -> CheckpointRecord:
    """The trial's best checkpoint (by its validation), its latest (highest step), or the one with id `which`."""
    trial = storage.get_trial(trial_id)
    if which not in ("best", "latest"):
        checkpoint = storage.get_checkpoint(which)
        if checkpoint.trial_id != trial_id:
            raise RecordNotFound(f"checkpoint {which} belongs to trial {checkpoint.trial_id}, not to trial {trial_id}")
        _require_files(checkpoint)
        return checkpoint
    checkpoints = storage.checkpoints(trial_id=trial_id)
    if which == "latest":
        ranked = rank_by_step(checkpoints)
    else:
        experiment = storage.get_experiment(trial.experiment_id)
        searcher = experiment.config["searcher"]
        validations = searcher_validations(storage.metrics(trial_id=trial_id, kind="validation"), searcher["metric"])
        ranked = rank_by_validation(checkpoints, validations, searcher.get("smaller_is_better", True))
    if not ranked:
        reason = "no checkpoint" if not checkpoints else "no checkpoint with a validation reported at its step"
        raise RecordNotFound(f"trial {trial_id} has {reason} (checkpoints: {len(checkpoints)})")
    return ranked[0]


def best_checkpoints_of_best_trials(storage: Storage, experiment_id: int, top_n: int) -> list[CheckpointRecord]:
    """Each trial's best checkpoint, for the `top_n` trials whose best checkpoint is best, best first."""
    if top_n < 1:
        raise ConfigError([Problem("--top-n", "must be at least 1", top_n)])
    experiment = storage.get_experiment(experiment_id)
    searcher = experiment.config["searcher"]
    validations = searcher_validations(storage.metrics(experiment_id=experiment_id, kind="validation"),
                                       searcher["metric"])
    chosen: dict[int, CheckpointRecord] = {}
    for checkpoint in rank_by_validation(storage.checkpoints(experiment_id=experiment_id), validations,
                                         searcher.get("smaller_is_better", True)):
        if len(chosen) == top_n:
            break
        chosen.setdefault(checkpoint.trial_id, checkpoint)
    return list(chosen.values())


def export_checkpoint(storage: Storage, checkpoint_id: str, destination: str | Path) -> ExportedCheckpoint:
    """Copy one checkpoint into `destination` (which must not exist, or be an empty folder)."""
    checkpoint = storage.get_checkpoint(checkpoint_id)
    _require_files(checkpoint)
    destination = Path(destination)
    _require_free(destination)
    metadata = export_metadata(storage, checkpoint)
    staging = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.partial")
    try:
        if is_local_path(checkpoint.path):
            shutil.copytree(checkpoint.path, staging, symlinks=True)
        else:
            checkpoint_storage.local_copy(checkpoint.path, staging)
        (staging / EXPORT_METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        os.rename(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportedCheckpoint(destination, metadata)


def export_experiment(storage: Storage, experiment_id: int, destination: str | Path,
                      top_n: int = 1) -> list[ExportedCheckpoint]:
    """Export the best checkpoints of the `top_n` best trials into `destination/trial-<id>/`, with an index.

    `destination/index.json` lists them best first. LookupError if no checkpoint has a validation.
    """
    checkpoints = best_checkpoints_of_best_trials(storage, experiment_id, top_n)
    if not checkpoints:
        raise RecordNotFound(f"experiment {experiment_id} has no checkpoint with a validation reported at its step")
    destination = Path(destination)
    folders = [destination / f"trial-{checkpoint.trial_id}" for checkpoint in checkpoints]
    for folder in [*folders, destination / EXPORT_INDEX_FILE]:
        if folder.exists():
            raise FileExistsError(f"{folder} already exists; choose another output folder")
    destination.mkdir(parents=True, exist_ok=True)
    exported = [export_checkpoint(storage, checkpoint.id, folder) for checkpoint, folder in zip(checkpoints, folders)]
    index = {"format": EXPORT_FORMAT, "experiment_id": experiment_id, "checkpoints": [
        {"rank": rank, "folder": entry.path.name, "trial_id": entry.metadata["trial"]["id"],
         "checkpoint_id": entry.metadata["checkpoint"]["id"], "validation": entry.metadata["validation"]}
        for rank, entry in enumerate(exported, start=1)]}
    (destination / EXPORT_INDEX_FILE).write_text(json.dumps(index, indent=2, default=str) + "\n")
    return exported


def export_metadata(storage: Storage, checkpoint: CheckpointRecord) -> dict[str, Any]:
    """What `hpt_export.json` holds for a checkpoint (plain JSON data)."""
    trial = storage.get_trial(checkpoint.trial_id)
    experiment = storage.get_experiment(trial.experiment_id)
    searcher = experiment.config["searcher"]
    at_step = {record.kind: record.metrics for record in storage.metrics(trial_id=trial.id)
               if record.batches == checkpoint.batches}
    return {
        "format": EXPORT_FORMAT,
        "checkpoint": {"id": checkpoint.id, "batches": checkpoint.batches, "epochs": checkpoint.epochs,
                       "length": checkpoint.length, "metadata": checkpoint.metadata,
                       "created_at": checkpoint.created_at.isoformat()},
        "trial": {"id": trial.id, "request_id": trial.request_id, "state": trial.state,
                  "end_reason": trial.end_reason, "hparams": trial.hparams, "seed": trial.seed,
                  "restarts": trial.restarts, "parent_request_id": trial.parent_request_id},
        "experiment": {"id": experiment.id, "name": experiment.name, "searcher": searcher["name"],
                       "metric": searcher["metric"], "smaller_is_better": searcher.get("smaller_is_better", True)},
        "validation": at_step.get("validation"),
        "training": at_step.get("training"),
    }


def _require_files(checkpoint: CheckpointRecord) -> None:
    if checkpoint.state == "DELETED":
        raise RecordNotFound(f"checkpoint {checkpoint.id} was deleted by checkpoint garbage collection "
                             "(checkpoint_storage.save_experiment_best / save_trial_best / save_trial_latest)")
    if not checkpoint_storage.exists(checkpoint.path):
        raise RecordNotFound(f"checkpoint {checkpoint.id}'s folder {checkpoint.path} is missing")


def _require_free(destination: Path) -> None:
    if destination.is_dir() and any(destination.iterdir()):
        raise FileExistsError(f"{destination} is not empty; choose another output folder")
    if destination.exists() and not destination.is_dir():
        raise FileExistsError(f"{destination} is a file; choose another output folder")
