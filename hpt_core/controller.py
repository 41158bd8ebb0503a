"""Drives one experiment: feeds the search method's events, carries out its operations, keeps the books.

Every event is recorded before the search method sees it and every operation before it takes
effect, so an experiment can be resumed after the controller itself dies. Trials talk to the
controller over the channel; their processes are started and watched through an executor.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from hpt_core import checkpoint_storage
from hpt_core.channel import ChannelRefused, ChannelServer
from hpt_core.checkpoint_gc import collect_garbage
from hpt_core.config import ExperimentConfig, Length
from hpt_core.errors import SearcherError
from hpt_core.executors.base import Executor, LaunchSpec, TrialExit
from hpt_core.operations import Close, Create, ExitedReason, Operation, Shutdown, ValidateAfter, operation_to_dict
from hpt_core.plugins import experiment_loggers, notify
from hpt_core.replay import EventLog
from hpt_core.searchers.base import SearchMethod, searcher_metric_value
from hpt_core.storage import Storage, trial_log

logger = logging.getLogger(__name__)

TERMINAL_TRIAL_STATES = ("COMPLETED", "CANCELED", "ERROR")
LOOP_SECONDS = 0.05
FOLLOW_STORAGE_SECONDS = 0.5
CHECKPOINT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class EndReason:
    """Why a trial ended, as recorded with it."""

    COMPLETED_LENGTH = "completed its length"
    CLOSED_AT_RUNG = "closed at a rung"
    EARLY_STOP = "early-stop request"
    INVALID_HP = "invalid hyperparameters"
    ERROR_AFTER_RESTARTS = "error after restarts"
    INVALID_METRIC = "invalid searcher metric"
    CANCELED = "cancelled"
    TRIAL_TIME_LIMIT = "max_trial_time exceeded"
    TIME_LIMIT = "experiment time limit (max_time)"


@dataclass
class TrialRuntime:
    """The controller's view of one trial (mirrored in storage)."""

    trial_id: int
    request_id: int
    hparams: dict[str, Any]
    seed: int
    parent_request_id: int | None = None
    parent_length: int = 0
    state: str = "PENDING"
    target: int | None = None
    length_done: int = 0
    attempt: int = 0
    restarts: int = 0
    process_alive: bool = False
    close_requested: bool = False
    stop_requested: bool = False
    invalid_hp: bool = False
    fatal_error: str | None = None
    checkpoint_requested: bool = False
    told_to_end: bool = False
    launched_at: float = 0.0
    timed_out: bool = False

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL_TRIAL_STATES


class Controller:
    """Runs one experiment to its end: `run()` returns the final experiment state."""

    def __init__(
        self,
        storage: Storage,
        experiment_id: int,
        config: ExperimentConfig,
        searcher: SearchMethod,
        executor: Executor,
        *,
        secret: str,
        seed: int,
        checkpoint_root: str,
        host: str = "127.0.0.1",
        on_tick: Callable[["Controller"], None] | None = None,
    ) -> None:
        self.storage = storage
        self.experiment_id = experiment_id
        self.config = config
        self.searcher = searcher
        self.executor = executor
        self.secret = secret
        self.seed = seed
        self.checkpoint_root = checkpoint_root
        self.host = host
        self.on_tick = on_tick
        self.length = _searcher_length(config)
        self.trials: dict[int, TrialRuntime] = {}
        self.started_at = time.monotonic()
        self.best: tuple[float, int] | None = None
        self._by_trial_id: dict[int, TrialRuntime] = {}
        self._pending: list[int] = []
        self._events: collections.deque[tuple[str, tuple[Any, ...]]] = collections.deque()
        self._dispatching = False
        self._shutdown: Shutdown | None = None
        self._cancelling = False
        self._paused = False
        self._deadline = math.inf
        self._declined: set[int] = set()
        self._followed_at = 0.0
        self._replay: EventLog | None = None
        self._additional_trials = 0
        self._lock = threading.RLock()
        self.channel: ChannelServer | None = None
        self.experiment_dir = storage.get_experiment(experiment_id).experiment_dir
        self._handlers = {"start": self._on_start, "report": self._on_report, "checkpoint": self._on_checkpoint,
                          "status": self._on_status, "exit": self._on_exit}

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> str:
        """Start the experiment, or resume it from its record if it has one; returns its final state."""
        with experiment_loggers(self.experiment_id, self.config):
            return self._run()

    def _run(self) -> str:
        self.channel = ChannelServer(self._handle, self.secret, host=self.host).start()
        self.storage.set_controller_pid(self.experiment_id, os.getpid())
        if self.config.max_time is not None:
            age = (_now() - self.storage.get_experiment(self.experiment_id).created_at).total_seconds()
            self._deadline = time.monotonic() + self.config.max_time - age
        notify("hpt_experiment_started", experiment_id=self.experiment_id, config=self.config,
               experiment_dir=self.experiment_dir)
        try:
            with self._lock:
                records = self.storage.searcher_records(self.experiment_id)
                if records:
                    self._resume(EventLog(records))
                else:
                    self._dispatch("initial_operations")
                if self._additional_trials:
                    self._dispatch("extend", self._additional_trials)
            while not self._finished():
                with self._lock:
                    self._follow_storage()
                    self._enforce_trial_time_limit()
                    for trial_exit in self.executor.poll():
                        self._on_process_exit(trial_exit)
                    self._launch_pending()
                if self.on_tick is not None:
                    self.on_tick(self)
                time.sleep(LOOP_SECONDS)
        except BaseException:
            self.executor.shutdown()
            self.storage.set_experiment_state(self.experiment_id, "ERROR")
            raise
        finally:
            self.channel.stop()
            self.storage.set_controller_pid(self.experiment_id, None)
        state = self._final_state()
        self.executor.shutdown()
        collect_garbage(self.storage, self.experiment_id, self.config)
        self.storage.set_experiment_state(self.experiment_id, state)
        notify("hpt_experiment_ended", experiment_id=self.experiment_id, state=state)
        if self.on_tick is not None:
            self.on_tick(self)
        return state

    def add_trials(self, count: int) -> None:
        """Extend the search by `count` trials when `run()` starts (`hpt experiment continue`)."""
        self._additional_trials = count

    def cancel(self) -> None:
        """End every trial gracefully (they checkpoint and exit); the experiment ends CANCELED."""
        with self._lock:
            self._cancelling = True
            for trial in self.trials.values():
                if trial.process_alive:
                    self.executor.terminate(trial.trial_id)
                elif not trial.ended:
                    self._end_trial(trial, "CANCELED", EndReason.CANCELED, ExitedReason.USER_CANCELED)
            self._pending.clear()

    def _follow_storage(self) -> None:
        """Carry out `hpt experiment pause / activate / cancel`, which change the state in storage."""
        if time.monotonic() - self._followed_at < FOLLOW_STORAGE_SECONDS:
            return
        self._followed_at = time.monotonic()
        state = self.storage.get_experiment(self.experiment_id).state
        if state == "CANCELED" and not self._cancelling:
            self.cancel()
        self._paused = state == "PAUSED"

    @property
    def time_is_up(self) -> bool:
        """`max_time` has passed: no new trials; running ones finish their current unit."""
        return time.monotonic() >= self._deadline

    def _enforce_trial_time_limit(self) -> None:
        """A trial attempt running longer than `max_trial_time` is stopped; it counts as an error (restartable)."""
        limit = self.config.max_trial_time
        if limit is None:
            return
        for trial in self.trials.values():
            if trial.process_alive and not trial.timed_out and time.monotonic() - trial.launched_at > limit:
                logger.warning("trial %d ran longer than max_trial_time (%ss); stopping it", trial.trial_id, limit)
                trial.timed_out = True
                self.executor.terminate(trial.trial_id)

    def _end_at_time_limit(self) -> None:
        """Close the books when `max_time` is up: paused trials are COMPLETED, waiting ones CANCELED."""
        for trial in self.trials.values():
            if not trial.ended:
                trial.state = "COMPLETED" if trial.state == "PAUSED" else "CANCELED"
                self.storage.update_trial(trial.trial_id, state=trial.state, end_reason=EndReason.TIME_LIMIT,
                                          ended_at=_now())
        self._pending.clear()

    def _finished(self) -> bool:
        with self._lock:
            if any(trial.process_alive for trial in self.trials.values()):
                return False
            if self._cancelling:
                return True
            if self.time_is_up and self._shutdown is None:
                self._end_at_time_limit()
                return True
            if self._paused:
                return False
            if self._shutdown is not None:
                return True
            if not self._pending and not self._events and self.trials:
                if all(trial.ended or trial.state == "PAUSED" for trial in self.trials.values()):
                    logger.error("the search method is waiting on nothing and sent no Shutdown")
                    return True
            return False

    def _final_state(self) -> str:
        if self._cancelling:
            return "CANCELED"
        if self._shutdown is None:
            return "COMPLETED" if self.time_is_up else "ERROR"
        if self._shutdown.failure:
            return "ERROR"
        return "CANCELED" if self._shutdown.cancel else "COMPLETED"

    # --- the search method ------------------------------------------------------------------

    def _dispatch(self, event: str, *args: Any) -> None:
        """Feed one event to the search method, recording it and its operations before they take effect."""
        self._events.append((event, args))
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._events:
                name, event_args = self._events.popleft()
                if name == "extend":
                    self._shutdown = None  # the search goes on with more trials
                replaying = bool(self._replay)
                if not replaying:
                    self.storage.append_searcher_record(self.experiment_id, "event",
                                                        {"name": name, "args": list(event_args)})
                operations = getattr(self.searcher, name)(*event_args)
                new_operations = self._replay.consume(name, event_args, operations) if replaying else operations
                for operation in new_operations:
                    self.storage.append_searcher_record(self.experiment_id, "operation", operation_to_dict(operation))
                self.storage.save_searcher_state(self.experiment_id, self.searcher.state_dict(), self.searcher.progress())
                for operation in operations:
                    if replaying and operation not in new_operations:
                        self._replay_operation(operation)
                    else:
                        self._apply(operation)
        finally:
            self._dispatching = False

    def _apply(self, operation: Operation) -> None:
        if isinstance(operation, Create):
            self._create_trial(operation)
        elif isinstance(operation, ValidateAfter):
            self._validate_after(operation)
        elif isinstance(operation, Close):
            self._close(operation)
        elif isinstance(operation, Shutdown):
            self._shutdown = operation

    def _create_trial(self, operation: Create, announce: bool = True) -> None:
        if self.time_is_up:
            self._declined.add(operation.request_id)
            return
        seed = (self.seed * 1_000_003 + operation.request_id) % (2**31)
        trial_id = self.storage.create_trial(self.experiment_id, operation.request_id, operation.hparams, seed=seed,
                                             parent_request_id=operation.checkpoint)
        trial = TrialRuntime(trial_id, operation.request_id, operation.hparams, seed, operation.checkpoint)
        if operation.checkpoint is not None:
            parent = self.trials[operation.checkpoint]
            parent.checkpoint_requested = True
            trial.parent_length = parent.length_done
        self.trials[operation.request_id] = trial
        self._by_trial_id[trial_id] = trial
        if announce:
            self._dispatch("on_trial_created", operation.request_id)

    def _validate_after(self, operation: ValidateAfter) -> None:
        if operation.request_id in self._declined or self.time_is_up:
            return
        trial = self.trials[operation.request_id]
        if trial.ended:
            return
        trial.target = operation.length
        self.storage.update_trial(trial.trial_id, target_length=operation.length)
        if not trial.process_alive and operation.request_id not in self._pending:
            trial.state = "PENDING"
            self.storage.update_trial(trial.trial_id, state="PENDING")
            self._pending.append(operation.request_id)

    def _close(self, operation: Close) -> None:
        if operation.request_id in self._declined:
            return
        trial = self.trials[operation.request_id]
        trial.close_requested = True
        if trial.ended or trial.process_alive:
            return
        if operation.request_id in self._pending:
            self._pending.remove(operation.request_id)
        self._end_trial(trial, "COMPLETED", self._closed_reason(trial))

    def _closed_reason(self, trial: TrialRuntime) -> str:
        if self.config.searcher.max_length is not None and trial.length_done < self.length.value:
            return EndReason.CLOSED_AT_RUNG
        return EndReason.COMPLETED_LENGTH

    def _end_trial(self, trial: TrialRuntime, state: str, reason: str, early: ExitedReason | None = None) -> None:
        trial.state = state
        if trial.request_id in self._pending:
            self._pending.remove(trial.request_id)
        self.storage.update_trial(trial.trial_id, state=state, end_reason=reason, ended_at=_now())
        notify("hpt_trial_ended", experiment_id=self.experiment_id, trial_id=trial.trial_id, state=state, reason=reason)
        if early is not None:
            self._dispatch("on_trial_exited_early", trial.request_id, early.value)
        self._dispatch("on_trial_closed", trial.request_id)

    # --- processes --------------------------------------------------------------------------

    # --- resuming ----------------------------------------------------------------------------

    def _resume(self, log: EventLog) -> None:
        """Rebuild from storage and the record: replay the search method, then settle what the crash cut off."""
        self._load_trials()
        self._register_checkpoints_left_on_disk()
        self._replay = log
        while self._replay:
            step = self._replay.next_step()
            self._dispatch(step.name, *step.args)
        self._replay = None
        for request_id in sorted(self.trials):
            if request_id not in log.created:
                self._dispatch("on_trial_created", request_id)
        for request_id in sorted(self.trials):
            self._settle(self.trials[request_id], log)

    def _load_trials(self) -> None:
        """Trials as storage has them; any process an earlier controller left is stopped first."""
        for row in self.storage.list_trials(self.experiment_id):
            trial = TrialRuntime(row.id, row.request_id, row.hparams, row.seed, row.parent_request_id,
                                 state=row.state, target=row.target_length, restarts=row.restarts,
                                 attempt=self.executor.recover(row.id))
            self.trials[row.request_id] = trial
            self._by_trial_id[row.id] = trial
        for trial in self.trials.values():
            if trial.parent_request_id is not None and trial.parent_request_id in self.trials:
                trial.parent_length = self.trials[trial.parent_request_id].length_done

    def _register_checkpoints_left_on_disk(self) -> None:
        """Checkpoints that trials finished saving while no controller could register them."""
        known = {checkpoint.id for checkpoint in self.storage.checkpoints(experiment_id=self.experiment_id,
                                                                           include_deleted=True)}
        for name, metadata in checkpoint_storage.completed_checkpoints(self.checkpoint_root):
            if name in known or not CHECKPOINT_ID.fullmatch(name) or metadata.get("trial_id") not in self._by_trial_id:
                continue
            batches, epochs = int(metadata["batches"]), int(metadata["epochs"])
            path = checkpoint_storage.join(self.checkpoint_root, name)
            self.storage.add_checkpoint(metadata["trial_id"], name, path=path, batches=batches, epochs=epochs,
                                        length=self._searcher_units(batches, epochs),
                                        metadata=metadata.get("metadata") or {})

    def _replay_operation(self, operation: Operation) -> None:
        """An operation that had taken effect before the crash: rebuild the controller's view, touch nothing."""
        if isinstance(operation, Create):
            if operation.request_id not in self.trials:
                self._create_trial(operation, announce=False)
        elif isinstance(operation, ValidateAfter) and operation.request_id in self.trials:
            self.trials[operation.request_id].target = operation.length
        elif isinstance(operation, Close) and operation.request_id in self.trials:
            self.trials[operation.request_id].close_requested = True
        elif isinstance(operation, Shutdown):
            self._shutdown = operation

    def _settle(self, trial: TrialRuntime, log: EventLog) -> None:
        """Give a trial the events the crash kept from the search method, then make it PENDING or PAUSED."""
        trial.length_done = log.validated.get(trial.request_id, 0)
        if trial.ended:
            if trial.request_id not in log.closed:
                row = self.storage.get_trial(trial.trial_id)
                early = _exited_reason(row.end_reason or "")
                if early is not None:
                    self._dispatch("on_trial_exited_early", trial.request_id, early.value)
                self._dispatch("on_trial_closed", trial.request_id)
            return
        self._dispatch_unheard_validation(trial)
        if trial.ended:
            return
        if trial.close_requested:
            self._end_trial(trial, "COMPLETED", self._closed_reason(trial))
        elif trial.target is not None and trial.target > trial.length_done:
            trial.state = "PENDING"
            if trial.request_id not in self._pending:
                self._pending.append(trial.request_id)
            self.storage.update_trial(trial.trial_id, state="PENDING")
        else:
            trial.state = "PAUSED"
            self.storage.update_trial(trial.trial_id, state="PAUSED")

    def _dispatch_unheard_validation(self, trial: TrialRuntime) -> None:
        """A validation that reached the trial's target was stored, but the search method never heard of it."""
        if trial.target is None or trial.length_done >= trial.target:
            return
        for record in self.storage.metrics(trial_id=trial.trial_id, kind="validation"):
            if self._searcher_units(record.batches, record.epochs) >= trial.target:
                value = searcher_metric_value(record.metrics, self.config.searcher.metric)
                trial.length_done = trial.target
                self.storage.update_trial(trial.trial_id, length_done=trial.length_done)
                self._track_best(trial, value)
                self._dispatch("on_validation_completed", trial.request_id, value, trial.target)
                return

    # --- processes --------------------------------------------------------------------------

    def _launch_pending(self) -> None:
        if self._paused or self.time_is_up:
            return
        limit = self.config.searcher.max_concurrent_trials or math.inf
        running = sum(trial.process_alive for trial in self.trials.values())
        for request_id in list(self._pending):
            if running >= limit:
                return
            trial = self.trials[request_id]
            if not self._ready_to_launch(trial):
                continue
            spec = self._launch_spec(trial, attempt=trial.attempt + 1)
            if not self.executor.can_launch(spec):
                return  # its GPUs are busy: the next trial to end frees them
            self._pending.remove(request_id)
            self._launch(trial, spec)
            running += 1

    def _ready_to_launch(self, trial: TrialRuntime) -> bool:
        """A warm-started child waits for the parent's checkpoint of the round it was cloned at."""
        if trial.parent_request_id is None or self.storage.latest_checkpoint(trial.trial_id) is not None:
            return True
        parent = self.trials[trial.parent_request_id]
        return not parent.process_alive or self._parent_checkpoint(trial) is not None

    def _parent_checkpoint(self, trial: TrialRuntime) -> Any:
        parent = self.trials[trial.parent_request_id]
        candidates = [checkpoint for checkpoint in self.storage.checkpoints(trial_id=parent.trial_id)
                      if checkpoint.length is not None and checkpoint.length <= trial.parent_length]
        if candidates:
            return max(candidates, key=lambda checkpoint: (checkpoint.length, checkpoint.batches))
        return None

    def _launch_spec(self, trial: TrialRuntime, attempt: int) -> LaunchSpec:
        env = {
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
            **self.config.environment.variables,
            "HPT_CONTROLLER_URL": self.channel.url,
            "HPT_SECRET": self.secret,
            "HPT_EXPERIMENT_ID": str(self.experiment_id),
            "HPT_TRIAL_ID": str(trial.trial_id),
            "HPT_ATTEMPT": str(attempt),
        }
        return LaunchSpec(
            trial_id=trial.trial_id, attempt=attempt, command=self.config.entrypoint or "", env=env,
            log_path=str(trial_log(self.experiment_dir, trial.trial_id)),
            slots=self.config.resources.slots_per_trial,
        )

    def _launch(self, trial: TrialRuntime, spec: LaunchSpec) -> None:
        self.executor.ensure_stopped(trial.trial_id)
        trial.attempt = spec.attempt
        trial.told_to_end = False
        trial.timed_out = False
        trial.launched_at = time.monotonic()
        trial.state = "RUNNING"
        trial.process_alive = True
        self.storage.update_trial(trial.trial_id, state="RUNNING", started_at=_now(), restarts=trial.restarts)
        self.executor.launch(spec)
        notify("hpt_trial_started", experiment_id=self.experiment_id, trial_id=trial.trial_id,
               request_id=trial.request_id, hparams=trial.hparams)

    def _on_process_exit(self, trial_exit: TrialExit) -> None:
        trial = self._by_trial_id.get(trial_exit.trial_id)
        if trial is None or trial_exit.attempt != trial.attempt or not trial.process_alive:
            return
        trial.process_alive = False
        clean = trial_exit.returncode == 0
        if trial.invalid_hp:
            self._end_trial(trial, "CANCELED", EndReason.INVALID_HP, ExitedReason.INVALID_HP)
        elif trial.fatal_error is not None:
            self._end_trial(trial, "ERROR", trial.fatal_error, ExitedReason.ERRORED)
        elif self._cancelling:
            self._end_trial(trial, "CANCELED", EndReason.CANCELED, ExitedReason.USER_CANCELED)
        elif trial.timed_out:
            self._on_crash(trial, trial_exit.returncode, EndReason.TRIAL_TIME_LIMIT)
        elif clean and trial.stop_requested:
            self._end_trial(trial, "COMPLETED", EndReason.EARLY_STOP, ExitedReason.USER_REQUESTED_STOP)
        elif clean and trial.close_requested:
            self._end_trial(trial, "COMPLETED", self._closed_reason(trial))
        elif clean and trial.told_to_end:
            self._pause_or_resume(trial)
        else:
            self._on_crash(trial, trial_exit.returncode)

    def _pause_or_resume(self, trial: TrialRuntime) -> None:
        """A trial that exited when told to pause is PAUSED, or PENDING again if it was promoted meanwhile."""
        if trial.target is not None and trial.target > trial.length_done:
            trial.state = "PENDING"
            self._pending.append(trial.request_id)
        else:
            trial.state = "PAUSED"
        self.storage.update_trial(trial.trial_id, state=trial.state)

    def _on_crash(self, trial: TrialRuntime, returncode: int, reason: str = EndReason.ERROR_AFTER_RESTARTS) -> None:
        if trial.restarts < self.config.max_restarts:
            trial.restarts += 1
            trial.state = "PENDING"
            self.storage.update_trial(trial.trial_id, state="PENDING", restarts=trial.restarts)
            self._pending.append(trial.request_id)
            logger.warning("trial %d exited with %d; restart %d of %d", trial.trial_id, returncode, trial.restarts,
                           self.config.max_restarts)
        else:
            self._end_trial(trial, "ERROR", reason, ExitedReason.ERRORED)

    # --- the channel ------------------------------------------------------------------------

    def _handle(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name not in self._handlers:
            raise ChannelRefused(404, f"no such endpoint: {name}")
        with self._lock:
            trial = self._identify(body)
            return self._handlers[name](trial, body)

    def _identify(self, body: Mapping[str, Any]) -> TrialRuntime:
        trial = self._by_trial_id.get(body.get("trial_id"))
        if trial is None:
            raise ChannelRefused(401, f"trial {body.get('trial_id')!r} does not belong to this experiment")
        if body.get("attempt") != trial.attempt or not trial.process_alive:
            raise ChannelRefused(409, f"attempt {body.get('attempt')!r} of trial {trial.trial_id} is not the live one")
        return trial

    def _on_start(self, trial: TrialRuntime, body: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "request_id": trial.request_id,
            "hparams": trial.hparams,
            "seed": trial.seed,
            "unit": self._trial_unit(),
            "records_per_epoch": self.config.records_per_epoch,
            "metric": self.config.searcher.metric,
            "checkpoint_policy": self.config.checkpoint_policy,
            "max_length": self._longest_length(),
            "checkpoint_root": self.checkpoint_root,
            "restore": self._restore_for(trial),
            **self._decision(trial),
        }

    def _restore_for(self, trial: TrialRuntime) -> dict[str, Any] | None:
        """The trial's own latest checkpoint, else its parent's, else the experiment's warm start (if any)."""
        own = self.storage.latest_checkpoint(trial.trial_id)
        checkpoint, warm_start = (own, False) if own is not None else (None, True)
        if checkpoint is None and trial.parent_request_id is not None:
            checkpoint = self._parent_checkpoint(trial)
        if checkpoint is None:
            checkpoint = self._warm_start_checkpoint()
        if checkpoint is None:
            return None
        return {"checkpoint_id": checkpoint.id, "path": checkpoint.path, "batches": checkpoint.batches,
                "epochs": checkpoint.epochs, "metadata": checkpoint.metadata, "warm_start": warm_start}

    def _warm_start_checkpoint(self) -> Any:
        """`searcher.source_checkpoint`, or the latest checkpoint of `searcher.source_trial_id`."""
        searcher = self.config.searcher
        if searcher.source_checkpoint is not None:
            return self.storage.get_checkpoint(searcher.source_checkpoint)
        if searcher.source_trial_id is not None:
            return self.storage.latest_checkpoint(searcher.source_trial_id)
        return None

    def _on_report(self, trial: TrialRuntime, body: Mapping[str, Any]) -> dict[str, Any]:
        kind = body["kind"]
        if kind not in ("training", "validation"):
            raise ValueError(f"kind must be 'training' or 'validation', got {kind!r}")
        metrics, batches, epochs = dict(body["metrics"]), int(body["batches"]), int(body.get("epochs") or 0)
        self.storage.add_metrics(trial.trial_id, kind, metrics, batches=batches, epochs=epochs)
        notify("hpt_metrics_reported", experiment_id=self.experiment_id, trial_id=trial.trial_id, kind=kind,
               metrics=metrics, batches=batches, epochs=epochs)
        trial.stop_requested = trial.stop_requested or bool(body.get("stop_requested"))
        if kind == "validation":
            self._on_validation(trial, metrics, self._searcher_units(batches, epochs))
        return self._decision(trial)

    def _on_validation(self, trial: TrialRuntime, metrics: Mapping[str, Any], length: int) -> None:
        try:
            value = searcher_metric_value(metrics, self.config.searcher.metric)
            if not math.isfinite(value):
                raise SearcherError(f"the searcher metric {self.config.searcher.metric!r} is {value}")
        except SearcherError as error:
            trial.fatal_error = f"{EndReason.INVALID_METRIC}: {error}"
            return
        self._track_best(trial, value)
        if trial.target is None or length < trial.target or trial.length_done >= trial.target:
            return
        trial.length_done = trial.target
        trial.checkpoint_requested = trial.checkpoint_requested or self.config.checkpoint_policy != "none"
        self.storage.update_trial(trial.trial_id, length_done=trial.length_done)
        self._dispatch("on_validation_completed", trial.request_id, value, trial.target)

    def _track_best(self, trial: TrialRuntime, value: float) -> None:
        """Remember the experiment's best; `best` and `all` policies checkpoint after such validations."""
        loss = value if self.config.searcher.smaller_is_better else -value
        is_best = self.best is None or loss < self.best[0]
        if is_best:
            self.best = (loss, trial.trial_id)
        policy = self.config.checkpoint_policy
        if policy == "all" or (policy == "best" and is_best):
            trial.checkpoint_requested = True

    def _on_checkpoint(self, trial: TrialRuntime, body: Mapping[str, Any]) -> dict[str, Any]:
        """Register a finished checkpoint; its path is ours (the checkpoint root and its id), never the request's."""
        checkpoint_id = str(body["checkpoint_id"])
        if not CHECKPOINT_ID.fullmatch(checkpoint_id):
            raise ValueError(f"checkpoint {checkpoint_id!r} is not a checkpoint id (a UUID)")
        path = checkpoint_storage.join(self.checkpoint_root, checkpoint_id)
        if not checkpoint_storage.is_complete(path):
            raise ValueError(f"checkpoint {checkpoint_id!r} is not a finished checkpoint in {self.checkpoint_root}")
        batches, epochs = int(body["batches"]), int(body.get("epochs") or 0)
        self.storage.add_checkpoint(trial.trial_id, checkpoint_id, path=path,
                                    batches=batches, epochs=epochs, length=self._searcher_units(batches, epochs),
                                    metadata=dict(body.get("metadata") or {}))
        trial.checkpoint_requested = False
        notify("hpt_checkpoint_saved", experiment_id=self.experiment_id, trial_id=trial.trial_id,
               checkpoint_id=str(body["checkpoint_id"]), metadata=dict(body.get("metadata") or {}))
        return self._decision(trial)

    def _on_status(self, trial: TrialRuntime, body: Mapping[str, Any]) -> dict[str, Any]:
        trial.stop_requested = trial.stop_requested or bool(body.get("stop_requested"))
        return self._decision(trial)

    def _on_exit(self, trial: TrialRuntime, body: Mapping[str, Any]) -> dict[str, Any]:
        if body.get("reason") == ExitedReason.INVALID_HP.value:
            trial.invalid_hp = True
        return self._decision(trial)

    def _decision(self, trial: TrialRuntime) -> dict[str, Any]:
        """What the trial should do now: `continue` to `target`, `pause` (wait for promotion) or `stop`."""
        if self._cancelling or trial.close_requested or trial.invalid_hp or trial.fatal_error or trial.ended:
            decision = "stop"
        elif self._paused:
            decision = "pause"
        elif trial.target is not None and trial.target > trial.length_done:
            decision = "continue"
        else:
            decision = "pause"
        trial.told_to_end = trial.told_to_end or decision != "continue"  # once told, a later promotion is a resume
        reply: dict[str, Any] = {"decision": decision, "checkpoint": trial.checkpoint_requested}
        if trial.target is not None:
            reply["target"] = self._trial_units(trial.target)
        if trial.fatal_error is not None:
            reply["error"] = trial.fatal_error
        return reply

    # --- units ------------------------------------------------------------------------------

    def _longest_length(self) -> int | None:
        """The most a trial may be asked to train, in its own unit (None when the search method does not say)."""
        searcher = self.config.searcher
        if searcher.max_length is not None:
            return self._trial_units(searcher.max_length.value)
        rounds = getattr(searcher, "num_rounds", None)
        return self._trial_units(self.length.value * rounds) if rounds else None

    def _trial_unit(self) -> str:
        return "epochs" if self.length.unit == "records" else self.length.unit

    def _trial_units(self, length: int) -> int:
        if self.length.unit == "records":
            return math.ceil(length / self.config.records_per_epoch)
        return length

    def _searcher_units(self, batches: int, epochs: int) -> int:
        if self.length.unit == "batches":
            return batches
        if self.length.unit == "epochs":
            return epochs
        return epochs * self.config.records_per_epoch

    # --- what the CLI shows -----------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        with self._lock:
            counts = collections.Counter(trial.state for trial in self.trials.values())
            best = None
            if self.best is not None:
                value = self.best[0] if self.config.searcher.smaller_is_better else -self.best[0]
                best = {"value": value, "trial_id": self.best[1]}
            return {"states": dict(counts), "best": best, "progress": self.searcher.progress(),
                    "elapsed": time.monotonic() - self.started_at}


_EXITED_REASONS = {
    EndReason.INVALID_HP: ExitedReason.INVALID_HP,
    EndReason.EARLY_STOP: ExitedReason.USER_REQUESTED_STOP,
    EndReason.CANCELED: ExitedReason.USER_CANCELED,
    EndReason.ERROR_AFTER_RESTARTS: ExitedReason.ERRORED,
    EndReason.TRIAL_TIME_LIMIT: ExitedReason.ERRORED,
}


def _exited_reason(end_reason: str) -> ExitedReason | None:
    """What the search method was told when a trial ended for `end_reason` (None: it was closed)."""
    if end_reason.startswith(EndReason.INVALID_METRIC):
        return ExitedReason.ERRORED
    return _EXITED_REASONS.get(end_reason)


def _searcher_length(config: ExperimentConfig) -> Length:
    searcher = config.searcher
    if searcher.max_length is not None:
        return searcher.max_length
    per_round = getattr(searcher, "length_per_round", None)
    return per_round if per_round is not None else Length(batches=1)


def _now() -> datetime:
    return datetime.now(timezone.utc)
