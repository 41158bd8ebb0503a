"""Where each trial of an experiment starts from: `lifecycle.restore`'s rules applied to its stored checkpoints."""

from __future__ import annotations

from typing import Any, Mapping

from hpt_core.config import SearcherConfig
from hpt_core.lifecycle import Trial, restore
from hpt_core.storage import Storage


class RestorePoints:
    """The restore point each trial is told, and whether a warm-started child may launch yet."""

    def __init__(self, storage: Storage, searcher: SearcherConfig, trials: Mapping[int, Trial]) -> None:
        self._storage = storage
        self._searcher = searcher
        self._trials = trials

    def ready_to_launch(self, trial: Trial) -> bool:
        """Whether the trial's restore point is known: a child waits for its running parent (rule 2)."""
        if trial.parent_request_id is None:
            return True
        parent = self._trials[trial.parent_request_id]
        return restore.ready_to_launch(trial, self._storage.latest_checkpoint(trial.trial_id) is not None,
                                       parent.process_alive, self._storage.checkpoints(trial_id=parent.trial_id))

    def told(self, trial: Trial) -> dict[str, Any] | None:
        """The trial's restore point as the trial is told it; None when it starts from scratch."""
        point = restore.restore_point(self._storage.latest_checkpoint(trial.trial_id), self._parent_checkpoint(trial),
                                      self._experiment_warm_start())
        if point is None:
            return None
        checkpoint = point.checkpoint
        return {"checkpoint_id": checkpoint.id, "path": checkpoint.path, "batches": checkpoint.batches,
                "epochs": checkpoint.epochs, "metadata": checkpoint.metadata, "warm_start": point.warm_start}

    def _parent_checkpoint(self, trial: Trial) -> Any:
        if trial.parent_request_id is None:
            return None
        parent = self._trials[trial.parent_request_id]
        return restore.parent_checkpoint(trial, self._storage.checkpoints(trial_id=parent.trial_id))

    def _experiment_warm_start(self) -> Any:
        """`searcher.source_checkpoint`, or the latest checkpoint of `searcher.source_trial_id`."""
        if self._searcher.source_checkpoint is not None:
            return self._storage.get_checkpoint(self._searcher.source_checkpoint)
        if self._searcher.source_trial_id is not None:
            return self._storage.latest_checkpoint(self._searcher.source_trial_id)
        return None
