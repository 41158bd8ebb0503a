"""The trial state machine: search-method operations and trial events in, trial states and effects out.

It holds every rule that decides what happens to a trial: what an operation means, the outcome
of an exit, restarts, the decision a trial is given, checkpoint requests, `best`, and how a
resumed experiment settles what a crash cut off. It does no I/O and reads no clock: its effects
(records, trial updates, a trial's end) go to the `Books` it is given, in the order they must be
written, and the controller (a thin shell of channel, executor and storage) carries out the rest.

Every event is given to `Books.record_event` before the search method sees it, and every operation
to `Books.record_operation` before it takes effect (write-ahead), so a crashed experiment resumes by
loading its latest `snapshot()` and replaying only the events recorded after it.

Longer than hpt's ~400-line habit on purpose: the rules share one state (trials, pending queue,
event queue, best) and are read together; the parts that need none of it are apart (`driver`,
`restore`, `units`, `trial`).
"""

from __future__ import annotations

import collections
import json
import math
from typing import Any, Iterable, Mapping, Protocol, Sequence

from hpt_core.config import ExperimentConfig
from hpt_core.errors import SearcherError
from hpt_core.lifecycle.driver import SearchDriver
from hpt_core.lifecycle.trial import EndReason, Trial, exited_reason
from hpt_core.lifecycle.units import Units
from hpt_core.operations import (
    Close,
    Create,
    ExitedReason,
    Operation,
    Shutdown,
    ValidateAfter,
    operation_from_dict,
    operation_to_dict,
)
from hpt_core.replay import EventLog
from hpt_core.searchers.base import SearchMethod, searcher_metric_value


class Books(Protocol):
    """Where the machine's effects land: storage and plugin hooks in the controller, memory in tests."""

    def record_event(self, name: str, args: list[Any]) -> None: ...

    def record_operation(self, operation: Operation) -> None: ...

    def create_trial(self, request_id: int, hparams: dict[str, Any], seed: int, parent_request_id: int | None) -> int:
        """Create the trial's record; its trial id."""

    def update_trial(self, trial: Trial, **fields: Any) -> None: ...

    def end_trial(self, trial: Trial, reason: str) -> None:
        """The trial reached its terminal `trial.state` for `reason`."""

    def restarting(self, trial: Trial, returncode: int) -> None:
        """The trial crashed and will be launched again (restart `trial.restarts` of `max_restarts`)."""


class TrialMachine:
    """The lifecycle of every trial of one experiment."""

    def __init__(self, config: ExperimentConfig, searcher: SearchMethod, books: Books, seed: int) -> None:
        self.config = config
        self.searcher = searcher
        self.driver = SearchDriver(searcher)
        self.books = books
        self.seed = seed
        self.units = Units(config)
        self.trials: dict[int, Trial] = {}
        self.by_trial_id: dict[int, Trial] = {}
        self.pending: list[int] = []
        self.alive: dict[int, Trial] = {}  # the trials whose process runs, by request id (their `process_alive`)
        self.shutdown: Shutdown | None = None
        self.cancelling = False
        self.paused = False
        self.time_is_up = False
        self.declined: set[int] = set()
        self.announced: set[int] = set()
        self.told_closed: set[int] = set()
        self.best: tuple[float, int] | None = None
        self.events_since_snapshot = 0
        self._events: collections.deque[tuple[str, tuple[Any, ...]]] = collections.deque()
        self._dispatching = False
        self._replay: EventLog | None = None

    # --- the search method --------------------------------------------------------------------

    def dispatch(self, event: str, *args: Any) -> None:
        """Feed one event to the search method (after any already queued), then carry out its operations."""
        self._events.append((event, args))
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._events:
                self._step(*self._events.popleft())
        finally:
            self._dispatching = False

    @property
    def idle(self) -> bool:
        """No event is waiting or being dispatched: a consistent point for a snapshot."""
        return not self._dispatching and not self._events

    def _step(self, name: str, args: tuple[Any, ...]) -> None:
        if name == "extend":
            self.shutdown = None  # the search goes on with more trials
        replaying = bool(self._replay)
        if not replaying:
            self.books.record_event(name, list(args))
        self.events_since_snapshot += 1
        self._note_event(name, args)
        operations = self.driver.send(name, *args)
        new_operations = self._replay.consume(name, args, operations) if self._replay else operations
        for operation in new_operations:
            self.books.record_operation(operation)
        for operation in operations:
            if replaying and operation not in new_operations:
                self._replay_operation(operation)
            else:
                self._apply(operation)

    def _note_event(self, name: str, args: tuple[Any, ...]) -> None:
        """What the search method has heard of, live or replayed."""
        if name == "on_trial_created":
            self.announced.add(args[0])
        elif name == "on_trial_closed":
            self.told_closed.add(args[0])
        elif name == "on_validation_completed" and args[0] in self.trials:
            trial = self.trials[args[0]]
            trial.length_done = max(trial.length_done, args[2])

    def _apply(self, operation: Operation) -> None:
        if isinstance(operation, Create):
            self._create_trial(operation)
        elif isinstance(operation, ValidateAfter):
            self._validate_after(operation)
        elif isinstance(operation, Close):
            self._close(operation)
        elif isinstance(operation, Shutdown):
            self.shutdown = operation

    def _create_trial(self, operation: Create, announce: bool = True) -> None:
        if self.time_is_up:
            self.declined.add(operation.request_id)
            return
        seed = (self.seed * 1_000_003 + operation.request_id) % (2**31)
        trial_id = self.books.create_trial(operation.request_id, operation.hparams, seed, operation.checkpoint)
        trial = Trial(trial_id, operation.request_id, operation.hparams, seed, operation.checkpoint)
        self._adopt(trial)
        if operation.checkpoint is not None:
            self._clone_from_parent(trial)
        if announce:
            self.dispatch("on_trial_created", operation.request_id)

    def _adopt(self, trial: Trial) -> None:
        self.trials[trial.request_id] = trial
        self.by_trial_id[trial.trial_id] = trial

    def _clone_from_parent(self, child: Trial) -> None:
        """A child starts from what its parent had validated at this moment; the parent checkpoints it."""
        parent = self.trials.get(child.parent_request_id)
        if parent is not None:
            parent.checkpoint_requested = True
            child.parent_length = parent.length_done

    def _validate_after(self, operation: ValidateAfter) -> None:
        if operation.request_id in self.declined or self.time_is_up:
            return
        trial = self.trials[operation.request_id]
        if trial.ended:
            return
        trial.target = operation.length
        self.books.update_trial(trial, target_length=operation.length)
        if not trial.process_alive and operation.request_id not in self.pending:
            trial.state = "PENDING"
            self.books.update_trial(trial, state="PENDING")
            self.pending.append(operation.request_id)

    def _close(self, operation: Close) -> None:
        if operation.request_id in self.declined:
            return
        trial = self.trials[operation.request_id]
        trial.close_requested = True
        if trial.ended or trial.process_alive:
            return
        self.end_trial(trial, "COMPLETED", self._closed_reason(trial))

    def _closed_reason(self, trial: Trial) -> str:
        if self.config.searcher.max_length is not None and trial.length_done < self.units.full_length:
            return EndReason.CLOSED_AT_RUNG
        return EndReason.COMPLETED_LENGTH

    def _replay_operation(self, operation: Operation) -> None:
        """An operation that took effect before the crash: rebuild the view of it, change nothing recorded."""
        if isinstance(operation, Create):
            if operation.request_id not in self.trials:
                self._create_trial(operation, announce=False)
            elif operation.checkpoint is not None:
                self._clone_from_parent(self.trials[operation.request_id])
        elif isinstance(operation, ValidateAfter) and operation.request_id in self.trials:
            self.trials[operation.request_id].target = operation.length
        elif isinstance(operation, Close) and operation.request_id in self.trials:
            self.trials[operation.request_id].close_requested = True
        elif isinstance(operation, Shutdown):
            self.shutdown = operation

    def end_trial(self, trial: Trial, state: str, reason: str, early: ExitedReason | None = None) -> None:
        """End `trial` in `state` for `reason`; the search method hears of the early exit (if any), then the close."""
        trial.state, trial.end_reason = state, reason
        if trial.request_id in self.pending:
            self.pending.remove(trial.request_id)
        self.books.end_trial(trial, reason)
        if early is not None:
            self.dispatch("on_trial_exited_early", trial.request_id, early.value)
        self.dispatch("on_trial_closed", trial.request_id)

    # --- trial events -------------------------------------------------------------------------

    def launched(self, trial: Trial, attempt: int) -> None:
        """The trial's `attempt` was started."""
        if trial.request_id in self.pending:
            self.pending.remove(trial.request_id)
        trial.attempt = attempt
        trial.told_to_end = False
        trial.timed_out = False
        trial.state = "RUNNING"
        trial.process_alive = True
        self.alive[trial.request_id] = trial

    def reported(self, trial: Trial, kind: str, metrics: Mapping[str, Any], batches: int, epochs: int,
                 stop_requested: bool = False) -> None:
        """The trial stored a training or validation report after (`batches`, `epochs`)."""
        trial.stop_requested = trial.stop_requested or stop_requested
        length = self._trained(trial, batches, epochs)
        if kind == "validation":
            self._on_validation(trial, metrics, length)

    def checkpointed(self, trial: Trial, batches: int, epochs: int) -> None:
        """The trial finished a checkpoint after (`batches`, `epochs`)."""
        trial.checkpoint_requested = False
        self._trained(trial, batches, epochs)

    def _trained(self, trial: Trial, batches: int, epochs: int) -> int:
        """Note how far the trial got (storage keeps it with the report or checkpoint, in the same transaction);
        that length in the search method's unit."""
        length = self.units.to_searcher(batches, epochs)
        trial.length_trained = max(trial.length_trained, length)
        return length

    def _on_validation(self, trial: Trial, metrics: Mapping[str, Any], length: int) -> None:
        try:
            value = searcher_metric_value(metrics, self.config.searcher.metric)
            if not math.isfinite(value):
                raise SearcherError(f"the searcher metric {self.config.searcher.metric!r} is {value}")
        except SearcherError as error:
            trial.fatal_error = f"{EndReason.INVALID_METRIC}: {error}"
            return
        if self._track_best(trial.trial_id, value):
            trial.checkpoint_requested = trial.checkpoint_requested or self.config.checkpoint_policy == "best"
        if self.config.checkpoint_policy == "all":
            trial.checkpoint_requested = True
        if trial.target is None or length < trial.target or trial.length_done >= trial.target:
            return
        trial.length_done = trial.target
        trial.checkpoint_requested = trial.checkpoint_requested or self.config.checkpoint_policy != "none"
        self.books.update_trial(trial, length_done=trial.length_done)
        self.dispatch("on_validation_completed", trial.request_id, value, trial.target)

    def _track_best(self, trial_id: int, value: float) -> bool:
        """Remember the experiment's best validation; whether `value` is it now."""
        loss = value if self.config.searcher.smaller_is_better else -value
        if self.best is not None and loss >= self.best[0]:
            return False
        self.best = (loss, trial_id)
        return True

    def asked_to_stop(self, trial: Trial, stop_requested: bool) -> None:
        trial.stop_requested = trial.stop_requested or stop_requested

    def said_invalid_hp(self, trial: Trial) -> None:
        trial.invalid_hp = True

    def ran_too_long(self, trial: Trial) -> None:
        """The attempt passed `max_trial_time`; it is being stopped and will count as an error."""
        trial.timed_out = True

    def exited(self, trial: Trial, returncode: int) -> None:
        """The trial's live attempt exited with `returncode`: the outcome rules, first that applies wins."""
        trial.process_alive = False
        del self.alive[trial.request_id]
        clean = returncode == 0
        if trial.invalid_hp:
            self.end_trial(trial, "CANCELED", EndReason.INVALID_HP, ExitedReason.INVALID_HP)
        elif trial.fatal_error is not None:
            self.end_trial(trial, "ERROR", trial.fatal_error, ExitedReason.ERRORED)
        elif self.cancelling:
            self.end_trial(trial, "CANCELED", EndReason.CANCELED, ExitedReason.USER_CANCELED)
        elif trial.timed_out:
            self._crashed(trial, returncode, EndReason.TRIAL_TIME_LIMIT)
        elif clean and trial.stop_requested:
            self.end_trial(trial, "COMPLETED", EndReason.EARLY_STOP, ExitedReason.USER_REQUESTED_STOP)
        elif clean and trial.close_requested:
            self.end_trial(trial, "COMPLETED", self._closed_reason(trial))
        elif clean and trial.told_to_end:
            self._pause_or_continue(trial)
        else:
            self._crashed(trial, returncode)

    def _pause_or_continue(self, trial: Trial) -> None:
        """A trial that exited when told to pause is PAUSED, or PENDING again if it was promoted meanwhile."""
        if trial.target is not None and trial.target > trial.length_done:
            trial.state = "PENDING"
            self.pending.append(trial.request_id)
        else:
            trial.state = "PAUSED"
        self.books.update_trial(trial, state=trial.state)

    def _crashed(self, trial: Trial, returncode: int, reason: str = EndReason.ERROR_AFTER_RESTARTS) -> None:
        if trial.restarts < self.config.max_restarts:
            trial.restarts += 1
            trial.state = "PENDING"
            self.books.update_trial(trial, state="PENDING", restarts=trial.restarts)
            self.pending.append(trial.request_id)
            self.books.restarting(trial, returncode)
        else:
            self.end_trial(trial, "ERROR", reason, ExitedReason.ERRORED)

    def decision(self, trial: Trial) -> dict[str, Any]:
        """What the trial should do now: `continue` to `target`, `pause` (wait for promotion) or `stop`."""
        if self.cancelling or trial.close_requested or trial.invalid_hp or trial.fatal_error or trial.ended:
            decision = "stop"
        elif self.paused:
            decision = "pause"
        elif trial.target is not None and trial.target > trial.length_done:
            decision = "continue"
        else:
            decision = "pause"
        trial.told_to_end = trial.told_to_end or decision != "continue"  # once told, a later promotion is a resume
        reply: dict[str, Any] = {"decision": decision, "checkpoint": trial.checkpoint_requested}
        if trial.target is not None:
            reply["target"] = self.units.to_trial(trial.target)
        if trial.fatal_error is not None:
            reply["error"] = trial.fatal_error
        return reply

    # --- the experiment -----------------------------------------------------------------------

    def cancel(self) -> list[Trial]:
        """End every trial that is not running (CANCELED); the running ones, returned, must be stopped."""
        self.cancelling = True
        running = list(self.alive.values())
        self._cancel_waiting()
        return running

    def _cancel_waiting(self) -> None:
        """End every trial that neither runs nor has ended CANCELED, those the search method creates meanwhile
        too (on hearing of an exit, or of a report that a stopping trial still sends)."""
        while waiting := [trial for trial in self.trials.values() if not trial.process_alive and not trial.ended]:
            for trial in waiting:
                self.end_trial(trial, "CANCELED", EndReason.CANCELED, ExitedReason.USER_CANCELED)
        self.pending.clear()

    def stopped_on_failure(self) -> None:
        """The controller failed and stopped the trials: those it had running are PAUSED, as a paused experiment's
        are (a resume settles every trial again)."""
        for trial in self.trials.values():
            if trial.state == "RUNNING":
                trial.state = "PAUSED"
                self.books.update_trial(trial, state="PAUSED")

    def end_at_time_limit(self) -> None:
        """Close the books when `max_time` is up: paused trials are COMPLETED, waiting ones CANCELED."""
        for trial in self.trials.values():
            if not trial.ended:
                trial.state = "COMPLETED" if trial.state == "PAUSED" else "CANCELED"
                trial.end_reason = EndReason.TIME_LIMIT
                self.books.end_trial(trial, EndReason.TIME_LIMIT)
        self.pending.clear()

    def finished(self) -> bool:
        """Whether the experiment is over (no trial runs, and nothing more can happen)."""
        if self.alive:
            return False
        if self.cancelling:
            self._cancel_waiting()
            return True
        if self.time_is_up and self.shutdown is None:
            self.end_at_time_limit()
            return True
        if self.paused:
            return False
        if self.shutdown is not None:
            return True
        if not self.pending and self.idle and self.trials:
            if all(trial.ended or trial.state == "PAUSED" for trial in self.trials.values()):
                raise SearcherError(f"search method {self.driver.method!r} is waiting on nothing and sent no Shutdown")
        return False

    def final_state(self) -> str:
        if self.cancelling:
            return "CANCELED"
        if self.shutdown is None:
            return "COMPLETED"  # the time limit ended it
        if self.shutdown.failure:
            return "ERROR"
        return "CANCELED" if self.shutdown.cancel else "COMPLETED"

    def best_value(self) -> tuple[float, int] | None:
        """The best searcher metric so far and its trial id."""
        if self.best is None:
            return None
        loss, trial_id = self.best
        return (loss if self.config.searcher.smaller_is_better else -loss), trial_id

    # --- resuming -----------------------------------------------------------------------------

    def load(self, trials: Iterable[Trial], snapshot: Mapping[str, Any] | None,
             validations: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
        """Take the trials as storage has them, the latest snapshot (if any) and every stored validation
        (trial id, metrics) in the order they were reported (for `best`)."""
        for trial in trials:
            self._adopt(trial)
        if snapshot is not None:
            self._load_snapshot(snapshot)
        for trial_id, metrics in validations:
            try:
                value = searcher_metric_value(metrics, self.config.searcher.metric)
            except SearcherError:
                continue
            if math.isfinite(value):
                self._track_best(trial_id, value)

    def replay(self, log: EventLog) -> None:
        """Feed the recorded events (after the snapshot) again; the operations must come out as recorded."""
        self._replay = log
        try:
            while self._replay:
                step = self._replay.next_step()
                self.dispatch(step.name, *step.args)
        finally:
            self._replay = None

    def settle(self, validations_of: Any) -> None:
        """After a replay: give the search method what the crash kept from it, then make each trial
        PENDING or PAUSED. `validations_of(trial)` lists the trial's stored validations as
        (length in the method's unit, metrics)."""
        for request_id in sorted(self.trials):
            if request_id not in self.announced:
                self.dispatch("on_trial_created", request_id)
        for request_id in sorted(self.trials):
            self._settle(self.trials[request_id], validations_of)

    def _settle(self, trial: Trial, validations_of: Any) -> None:
        if trial.ended:
            if trial.request_id not in self.told_closed:
                early = exited_reason(trial.end_reason or "")
                if early is not None:
                    self.dispatch("on_trial_exited_early", trial.request_id, early.value)
                self.dispatch("on_trial_closed", trial.request_id)
            return
        self._hear_unheard_validation(trial, validations_of(trial))
        if trial.ended:
            return
        if trial.close_requested:
            self.end_trial(trial, "COMPLETED", self._closed_reason(trial))
        elif trial.target is not None and trial.target > trial.length_done:
            trial.state = "PENDING"
            if trial.request_id not in self.pending:
                self.pending.append(trial.request_id)
            self.books.update_trial(trial, state="PENDING")
        else:
            trial.state = "PAUSED"
            self.books.update_trial(trial, state="PAUSED")

    def _hear_unheard_validation(self, trial: Trial, validations: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """A validation that reached the trial's target was stored, but the search method never heard of it."""
        if trial.target is None or trial.length_done >= trial.target:
            return
        for length, metrics in validations:
            if length >= trial.target:
                value = searcher_metric_value(metrics, self.config.searcher.metric)
                trial.length_done = trial.target
                self.books.update_trial(trial, length_done=trial.length_done)
                self.dispatch("on_validation_completed", trial.request_id, value, trial.target)
                return

    # --- snapshots ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything replay would rebuild, as plain JSON (a copy); only taken when `idle`."""
        if not self.idle:
            raise RuntimeError("a snapshot is taken between events, never while one is dispatched")
        self.events_since_snapshot = 0
        return json.loads(json.dumps({
            "searcher": self.searcher.state_dict(),
            "driver": self.driver.state_dict(),
            "trials": {str(request_id): [trial.target, trial.length_done, trial.close_requested, trial.parent_length]
                       for request_id, trial in self.trials.items()},
            "declined": sorted(self.declined),
            "announced": sorted(self.announced),
            "told_closed": sorted(self.told_closed),
            "shutdown": None if self.shutdown is None else operation_to_dict(self.shutdown),
        }))

    def _load_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        self.searcher.load_state_dict(snapshot["searcher"])
        self.driver.load_state_dict(snapshot["driver"])
        for request_id, (target, length_done, close_requested, parent_length) in snapshot["trials"].items():
            trial = self.trials.get(int(request_id))
            if trial is not None:
                trial.target, trial.length_done = target, length_done
                trial.close_requested, trial.parent_length = close_requested, parent_length
        self.declined = set(snapshot["declined"])
        self.announced = set(snapshot["announced"])
        self.told_closed = set(snapshot["told_closed"])
        self.shutdown = None if snapshot["shutdown"] is None else operation_from_dict(snapshot["shutdown"])
