"""Which checkpoints an experiment keeps (`checkpoint_storage.save_*`), and removing the others.

When an experiment ends it keeps the union of

- `save_experiment_best`: the N best checkpoints of the experiment by their validation,
- `save_trial_best`: the N best checkpoints of each trial by their validation,
- `save_trial_latest`: the N latest checkpoints of each trial (the highest steps),

and, so that a search can go on (`hpt experiment continue`), the latest checkpoint of every trial that
has not ended and the checkpoints of the parent of every PBT child that has none of its own yet.

A checkpoint's validation is the searcher metric its trial reported at the checkpoint's step (the same
`batches`; the last finite value when the step was reported more than once); only checkpoints with
a validation count as "best". Ties go to the older checkpoint. A removed checkpoint is marked
DELETED in storage first, then its folder goes.

While an experiment runs, `collect_superseded` removes what the end can no longer keep: checkpoints
of ended trials that neither their trial's best nor latest keep, and that at least
`save_experiment_best` checkpoints of ended trials beat.

>>> from types import SimpleNamespace as Checkpoint
>>> checkpoints = [Checkpoint(id="a", trial_id=1, batches=10), Checkpoint(id="b", trial_id=1, batches=20),
...                Checkpoint(id="c", trial_id=1, batches=30)]
>>> sorted(checkpoints_to_keep(checkpoints, {1: {10: 0.2, 20: 0.5}}, save_experiment_best=0,
...                            save_trial_best=1, save_trial_latest=1, smaller_is_better=True))
['a', 'c']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from hpt_core import checkpoint_storage
from hpt_core.checkpoint_storage import is_local_path
from hpt_core.config import ExperimentConfig
from hpt_core.storage import CheckpointRecord, MetricRecord, Storage, TrialRecord

logger = logging.getLogger(__name__)

ENDED_TRIAL_STATES = frozenset({"COMPLETED", "CANCELED", "ERROR"})

CheckpointT = TypeVar("CheckpointT", bound="CheckpointFacts")

#: trial id -> batches -> the searcher metric reported at that step.
Validations = Mapping[int, Mapping[int, float]]


class CheckpointFacts(Protocol):
    """What garbage collection needs to know of a checkpoint (a `CheckpointRecord` has it)."""

    id: str
    trial_id: int
    batches: int


class TrialFacts(Protocol):
    """What garbage collection needs to know of a trial (a `TrialRecord` has it)."""

    id: int
    request_id: int
    state: str
    parent_request_id: int | None


def searcher_validations(records: Iterable[MetricRecord], metric: str) -> dict[int, dict[int, float]]:
    """trial id -> batches -> the last finite value of `metric` among the validation `records` (oldest first)."""
    by_trial: dict[int, dict[int, float]] = {}
    for record in records:
        value = record.metrics.get(metric)
        if record.kind == "validation" and _is_finite_number(value):
            by_trial.setdefault(record.trial_id, {})[record.batches] = float(value)
    return by_trial


def validation_of(checkpoint: CheckpointFacts, validations: Validations) -> float | None:
    """The searcher metric reported at the checkpoint's step, or None if there is none."""
    return validations.get(checkpoint.trial_id, {}).get(checkpoint.batches)


def rank_by_validation(
    checkpoints: Sequence[CheckpointT], validations: Validations, smaller_is_better: bool
) -> list[CheckpointT]:
    """The checkpoints that have a validation, best first; among equals the older (earlier in `checkpoints`)."""
    sign = 1.0 if smaller_is_better else -1.0
    scored = [(value, age, checkpoint) for age, checkpoint in enumerate(checkpoints)
              if (value := validation_of(checkpoint, validations)) is not None]
    return [checkpoint for _, _, checkpoint in sorted(scored, key=lambda entry: (sign * entry[0], entry[1]))]


def rank_by_step(checkpoints: Sequence[CheckpointT]) -> list[CheckpointT]:
    """The checkpoints latest (highest step) first; among equals the older (earlier in `checkpoints`)."""
    return [checkpoint for _, checkpoint in sorted(enumerate(checkpoints), key=lambda entry: (-entry[1].batches,
                                                                                              entry[0]))]


def checkpoints_to_keep(
    checkpoints: Sequence[CheckpointFacts],
    validations: Validations,
    *,
    save_experiment_best: int,
    save_trial_best: int,
    save_trial_latest: int,
    smaller_is_better: bool,
) -> set[str]:
    """The ids of the experiment's best, each trial's best and each trial's latest checkpoints (their union).

    `checkpoints` are the experiment's checkpoints oldest first, as `Storage.checkpoints` returns them.
    """
    keep = {checkpoint.id for checkpoint in
            rank_by_validation(checkpoints, validations, smaller_is_better)[:save_experiment_best]}
    for trial_checkpoints in _by_trial(checkpoints).values():
        keep.update(checkpoint.id for checkpoint in
                    rank_by_validation(trial_checkpoints, validations, smaller_is_better)[:save_trial_best])
        keep.update(checkpoint.id for checkpoint in rank_by_step(trial_checkpoints)[:save_trial_latest])
    return keep


def checkpoints_still_needed(checkpoints: Sequence[CheckpointFacts], trials: Sequence[TrialFacts]) -> set[str]:
    """Checkpoints a trial that has not ended may start from: its latest, or (a PBT child without one) its parent's."""
    by_trial = _by_trial(checkpoints)
    trial_by_request = {trial.request_id: trial for trial in trials}
    needed: set[str] = set()
    for trial in trials:
        if trial.state in ENDED_TRIAL_STATES:
            continue
        own = by_trial.get(trial.id, [])
        if own:
            highest = max(checkpoint.batches for checkpoint in own)
            needed.update(checkpoint.id for checkpoint in own if checkpoint.batches == highest)
        elif trial.parent_request_id in trial_by_request:
            parent = trial_by_request[trial.parent_request_id]
            needed.update(checkpoint.id for checkpoint in by_trial.get(parent.id, []))
    return needed


def superseded_checkpoints(
    checkpoints: Sequence[CheckpointFacts],
    validations: Validations,
    trials: Sequence[TrialFacts],
    *,
    save_experiment_best: int,
    save_trial_best: int,
    save_trial_latest: int,
    smaller_is_better: bool,
) -> set[str]:
    """Checkpoints that `checkpoints_to_keep` will not keep at the end, whatever the running trials still do.

    Only ended trials' checkpoints qualify (their validations and checkpoints are final); one goes when
    its trial keeps neither it as best nor as latest, and `save_experiment_best` checkpoints of ended
    trials rank before it (those cannot be removed early themselves, so they stay ahead of it). A
    checkpoint that a trial which has not ended may start from is never superseded.
    """
    ended = {trial.id for trial in trials if trial.state in ENDED_TRIAL_STATES}
    final = [checkpoint for checkpoint in checkpoints if checkpoint.trial_id in ended]
    kept_by_trials = checkpoints_to_keep(final, validations, save_experiment_best=0, save_trial_best=save_trial_best,
                                         save_trial_latest=save_trial_latest, smaller_is_better=smaller_is_better)
    ranked = rank_by_validation(final, validations, smaller_is_better)
    ranks = {checkpoint.id: rank for rank, checkpoint in enumerate(ranked)}
    needed = checkpoints_still_needed(checkpoints, trials)
    return {
        checkpoint.id for checkpoint in final
        if checkpoint.id not in kept_by_trials and checkpoint.id not in needed
        and ranks.get(checkpoint.id, math.inf) >= save_experiment_best
    }


def collect_garbage(storage: Storage, experiment_id: int, config: ExperimentConfig) -> list[str]:
    """Remove the experiment's checkpoints that it does not keep; returns the ids removed.

    Call it when the experiment ends.
    """
    checkpoints, validations, trials = _experiment_facts(storage, experiment_id, config)
    keep = checkpoints_to_keep(checkpoints, validations, **_retention(config))
    keep |= checkpoints_still_needed(checkpoints, trials)
    return _remove_all(storage, [checkpoint for checkpoint in checkpoints if checkpoint.id not in keep])


def collect_superseded(storage: Storage, experiment_id: int, config: ExperimentConfig) -> list[str]:
    """Remove, while the experiment runs, the checkpoints that its end would remove anyway; returns their ids."""
    checkpoints, validations, trials = _experiment_facts(storage, experiment_id, config)
    removable = superseded_checkpoints(checkpoints, validations, trials, **_retention(config))
    return _remove_all(storage, [checkpoint for checkpoint in checkpoints if checkpoint.id in removable])


def _experiment_facts(
    storage: Storage, experiment_id: int, config: ExperimentConfig
) -> tuple[list[CheckpointRecord], dict[int, dict[int, float]], list[TrialRecord]]:
    checkpoints = storage.checkpoints(experiment_id=experiment_id)
    validations = searcher_validations(storage.metrics(experiment_id=experiment_id, kind="validation"),
                                       config.searcher.metric)
    return checkpoints, validations, storage.list_trials(experiment_id)


def _retention(config: ExperimentConfig) -> dict[str, Any]:
    settings = config.checkpoint_storage
    return {"save_experiment_best": settings.save_experiment_best, "save_trial_best": settings.save_trial_best,
            "save_trial_latest": settings.save_trial_latest,
            "smaller_is_better": config.searcher.smaller_is_better}


def _remove_all(storage: Storage, checkpoints: Sequence[CheckpointRecord]) -> list[str]:
    return [checkpoint.id for checkpoint in checkpoints if _remove(storage, checkpoint)]


def _remove(storage: Storage, checkpoint: CheckpointRecord) -> bool:
    """Mark the checkpoint DELETED, then remove its folder (local or under a URL); False where it cannot be."""
    if checkpoint.path.rstrip("/").rsplit("/", 1)[-1] != checkpoint.id:
        logger.warning("checkpoint %s is recorded at %s, a folder not named after it: garbage collection leaves it",
                       checkpoint.id, checkpoint.path)
        return False
    storage.mark_checkpoint_deleted(checkpoint.id)
    try:
        checkpoint_storage.remove(checkpoint.path)
    except Exception as error:  # a storage that fails (network, permissions) must not end the experiment badly
        logger.warning("checkpoint %s is marked deleted but its folder %s could not be removed: %s",
                       checkpoint.id, checkpoint.path, error)
    return True


def _by_trial(checkpoints: Sequence[CheckpointT]) -> dict[int, list[CheckpointT]]:
    by_trial: dict[int, list[CheckpointT]] = {}
    for checkpoint in checkpoints:
        by_trial.setdefault(checkpoint.trial_id, []).append(checkpoint)
    return by_trial


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
