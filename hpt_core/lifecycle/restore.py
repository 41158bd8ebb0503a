"""Where a trial starts from: the rules, on checkpoint records given to them (no storage here).

1. Its own latest checkpoint (a restart or a resumed pause continues where it stopped).
2. Else, for a child (a `Create` with a checkpoint, such as PBT's exploit step), the parent's
   newest checkpoint at or before the length the parent had validated when the child was
   created; while the parent runs, the child waits until the parent has a checkpoint at or
   after that length (its checkpoint of that round, or a later one).
3. Else the experiment's warm start: `searcher.source_checkpoint`, or the latest checkpoint of
   `searcher.source_trial_id`.
4. Else nothing: the trial starts from scratch.

Only rule 1 continues the trial's own count of batches and epochs; the others are warm starts
(the trial counts from 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from hpt_core.lifecycle.trial import Trial


class CheckpointLike(Protocol):
    """What the rules read of a checkpoint record."""

    length: int | None
    batches: int


@dataclass(frozen=True)
class RestorePoint:
    """The checkpoint a trial starts from, and whether that is a warm start (counts from 0)."""

    checkpoint: Any
    warm_start: bool


def parent_checkpoint(child: Trial, parent_checkpoints: Sequence[CheckpointLike]) -> CheckpointLike | None:
    """The parent's newest checkpoint at or before the length it had validated when `child` was created."""
    candidates = [checkpoint for checkpoint in parent_checkpoints
                  if checkpoint.length is not None and checkpoint.length <= child.parent_length]
    return max(candidates, key=lambda checkpoint: (checkpoint.length, checkpoint.batches), default=None)


def restore_point(own_latest: Any, parent: Any, experiment_warm_start: Any) -> RestorePoint | None:
    """Rules 1–4: `own_latest`, else `parent` (rule 2's choice), else `experiment_warm_start`, else None."""
    if own_latest is not None:
        return RestorePoint(own_latest, warm_start=False)
    for checkpoint in (parent, experiment_warm_start):
        if checkpoint is not None:
            return RestorePoint(checkpoint, warm_start=True)
    return None


def ready_to_launch(child: Trial, has_own_checkpoint: bool, parent_running: bool,
                    parent_checkpoints: Sequence[CheckpointLike]) -> bool:
    """A warm-started child waits, while its parent runs, until the parent has registered a checkpoint at or after
    the length the child was cloned at: only then are the checkpoints rule 2 chooses from all in (rule 2)."""
    if child.parent_request_id is None or has_own_checkpoint or not parent_running:
        return True
    return any(checkpoint.length is not None and checkpoint.length >= child.parent_length
               for checkpoint in parent_checkpoints)
