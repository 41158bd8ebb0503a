"""Where the trial state machine's effects are written, and how a machine is rebuilt from them.

`StorageBooks` carries the machine's effects to storage (the searcher record, trial rows) and the
plugin hooks (a trial's end); `rebuild` gives a fresh machine back what a crashed controller's
machine knew: the trials, the latest snapshot, `best`, and the records after the snapshot replayed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable

from hpt_core.lifecycle import Trial, TrialMachine
from hpt_core.operations import Operation, operation_to_dict
from hpt_core.plugins import notify
from hpt_core.replay import EventLog
from hpt_core.storage import Storage

logger = logging.getLogger(__name__)


class StorageBooks:
    """The machine's effects, carried out on storage and the plugin hooks."""

    def __init__(self, storage: Storage, experiment_id: int, max_restarts: int) -> None:
        self.storage = storage
        self.experiment_id = experiment_id
        self.max_restarts = max_restarts

    def record_event(self, name: str, args: list[Any]) -> None:
        self.storage.append_searcher_record(self.experiment_id, "event", {"name": name, "args": args})

    def record_operation(self, operation: Operation) -> None:
        self.storage.append_searcher_record(self.experiment_id, "operation", operation_to_dict(operation))

    def create_trial(self, request_id: int, hparams: dict[str, Any], seed: int, parent_request_id: int | None) -> int:
        return self.storage.create_trial(self.experiment_id, request_id, hparams, seed=seed,
                                         parent_request_id=parent_request_id)

    def update_trial(self, trial: Trial, **fields: Any) -> None:
        self.storage.update_trial(trial.trial_id, **fields)

    def end_trial(self, trial: Trial, reason: str) -> None:
        self.storage.update_trial(trial.trial_id, state=trial.state, end_reason=reason, ended_at=_now())
        notify("hpt_trial_ended", experiment_id=self.experiment_id, trial_id=trial.trial_id, state=trial.state,
               reason=reason)

    def restarting(self, trial: Trial, returncode: int) -> None:
        logger.warning("trial %d exited with %d; restart %d of %d", trial.trial_id, returncode, trial.restarts,
                       self.max_restarts)


def rebuild(machine: TrialMachine, storage: Storage, experiment_id: int,
            attempt_of: Callable[[int], int] = lambda trial_id: 0) -> None:
    """Rebuild a fresh `machine` from storage: the trials, the latest snapshot, `best` from the stored
    validations, then the searcher records after the snapshot replayed. `attempt_of(trial_id)` is the
    latest attempt of a trial the executor knows of."""
    snapshot = storage.latest_snapshot(experiment_id)
    trials = [trial_of(row, attempt_of(row.id)) for row in storage.list_trials(experiment_id)]
    validations = [(record.trial_id, record.metrics)
                   for record in storage.metrics(experiment_id=experiment_id, kind="validation")]
    machine.load(trials, None if snapshot is None else snapshot.payload, validations)
    after = 0 if snapshot is None else snapshot.seq
    machine.replay(EventLog(storage.searcher_records(experiment_id, after=after)))


def trial_of(row: Any, attempt: int) -> Trial:
    """A trial as storage has it (after a crash: `attempt` is the latest the executor knows of). Its
    `length_done` is what the search method heard, which the snapshot and the replayed events restore."""
    return Trial(row.id, row.request_id, row.hparams, row.seed, row.parent_request_id, state=row.state,
                 end_reason=row.end_reason, target=row.target_length, length_trained=row.length_trained,
                 restarts=row.restarts, attempt=attempt)


def _now() -> datetime:
    return datetime.now(timezone.utc)
