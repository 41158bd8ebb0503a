"""Drives one experiment: the shell around the trial state machine (`hpt_core.lifecycle`).

The machine decides what happens to every trial; the controller moves its effects and the world's
events between it and the channel (trials' reports), the executor (processes), storage and the
plugin hooks. Every event is recorded before the search method sees it and every operation before
it takes effect, and what one event writes (a turn of the loop, a trial's request; a request's reports
go first to the group commit) is one commit, made before the trial is answered or a process started; a snapshot of the machine is saved every `SNAPSHOT_EVENTS` events or
`SNAPSHOT_SECONDS`, so a resumed experiment loads the latest snapshot and replays only the events
after it. A search method that breaks the protocol, or any other failure of the controller, leaves
the experiment PAUSED: only the user ends an experiment.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import os
import re
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from hpt_core import channel_fields as fields
from hpt_core import checkpoint_storage
from hpt_core.channel import START_VARIABLE, START_VARIABLE_BYTES, ChannelRefused, Sender, attempt_secret
from hpt_core.channel_server import REPORT_CALLS, HttpChannelServer, Request, SocketChannelServer
from hpt_core.checkpoint_gc import collect_garbage
from hpt_core.config import ExperimentConfig
from hpt_core.errors import SearcherError
from hpt_core.executors.base import Executor, LaunchSpec, TrialExit
from hpt_core.group_commit import GroupCommit, per_group
from hpt_core.lifecycle import Trial, TrialMachine
from hpt_core.ownership import Lease, LeaseLost
from hpt_core.plugins import experiment_loggers, notify
from hpt_core.recording import StorageBooks, rebuild
from hpt_core.restore_points import RestorePoints
from hpt_core.searchers.base import SearchMethod
from hpt_core.private_files import write_private
from hpt_core.storage import Batch, RecordNotFound, Report, Storage, channel_file, trial_log

logger = logging.getLogger(__name__)

LOOP_SECONDS = 0.05
FOLLOW_STORAGE_SECONDS = 0.5
SNAPSHOT_EVENTS = 200
SNAPSHOT_SECONDS = 5.0
CHECKPOINT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ControllerFailed(RuntimeError):
    """The controller stopped on a failure; the experiment is PAUSED and can be resumed once it is mended."""


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
        lease: Lease | None = None,
    ) -> None:
        self.storage = storage
        self.experiment_id = experiment_id
        self.config = config
        self.searcher = searcher
        self.executor = executor
        self.secret = secret
        self.checkpoint_root = checkpoint_root
        self.host = host
        self.on_tick = on_tick
        self.lease = lease or Lease(storage, experiment_id)
        self.machine = TrialMachine(config, searcher, StorageBooks(storage, experiment_id, config.max_restarts), seed)
        self.restore_points = RestorePoints(storage, config.searcher, self.machine.trials)
        self.started_at = time.monotonic()
        self._deadline = math.inf
        self._followed_at = 0.0
        self._snapshot_at = time.monotonic()
        self._launched_at: dict[int, float] = {}
        self._additional_trials = 0
        self._failure: SearcherError | None = None
        self._cancel_requested = False
        self._lock = threading.RLock()
        self._resuming = True
        self._decision_seq = 0
        self._decision_seq_lock = threading.Lock()
        self._group_commit = GroupCommit(storage)
        self._woken = threading.Event()
        executor.wake_listener = self._woken.set
        self.channel: HttpChannelServer | None = None
        self.local_channel: SocketChannelServer | None = None
        record = storage.get_experiment(experiment_id)
        self.experiment_dir, self.experiment_uuid = record.experiment_dir, record.uuid
        self._handlers = {"start": self._on_start, "checkpoint": self._on_checkpoint, "status": self._on_status,
                          "exit": self._on_exit}

    @property
    def trials(self) -> dict[int, Trial]:
        """The experiment's trials by request id."""
        return self.machine.trials

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> str:
        """Take the experiment's lease (`ownership.ExperimentOwned` if a live controller holds it), start the
        experiment or resume it from its record, and return its final state. A controller whose lease is
        taken over stops its trials and raises `ownership.LeaseLost`, leaving the experiment to the taker."""
        self.lease.acquire()
        self.lease.keep_renewed()
        try:
            with experiment_loggers(self.experiment_id, self.config):
                return self._run()
        finally:
            self.lease.release()

    def _run(self) -> str:
        self.executor.prepare(self.config.entrypoint or "", self._trial_variables(),
                              self.config.resources.slots_per_trial)  # before the set-up: the pool preloads meanwhile
        self._start_channels()
        if self.config.max_time is not None:
            age = (_now() - self.storage.get_experiment(self.experiment_id).created_at).total_seconds()
            self._deadline = time.monotonic() + self.config.max_time - age
        notify("hpt_experiment_started", experiment_id=self.experiment_id, config=self.config,
               experiment_dir=self.experiment_dir)
        try:
            with self._lock:
                if self.storage.searcher_records(self.experiment_id):
                    self._resume()
                else:
                    self.machine.dispatch("initial_operations")
                self._resuming = False
                if self._additional_trials:
                    self.machine.dispatch("extend", self._additional_trials)
            while True:
                self.lease.check()
                self._turn()
                if self.on_tick is not None:
                    self.on_tick(self)
                if self._finished():  # checked right after the turn: the one that ends the last trial ends the run
                    break
                self._woken.wait(LOOP_SECONDS)
        except LeaseLost:
            self._stop_channels()  # what trials send now is the new holder's to record, not this controller's
            self.executor.shutdown()
            raise
        except Exception as error:
            self._pause_after(error)
            raise ControllerFailed(self._failure_message(error)) from error
        except BaseException as error:  # Ctrl-C or exit: not the experiment's end either
            self._pause_after(error)
            raise
        finally:
            self._stop_channels()
        state = self.machine.final_state()
        self.executor.shutdown()
        self._save_snapshot()
        collect_garbage(self.storage, self.experiment_id, self.config)
        self.storage.set_experiment_state(self.experiment_id, state)
        notify("hpt_experiment_ended", experiment_id=self.experiment_id, state=state)
        if self.on_tick is not None:
            self.on_tick(self)
        return state

    def _turn(self) -> None:
        """One turn of the loop, when woken (a trial's process ended, a trial was answered) or every
        `LOOP_SECONDS`: its storage writes are one commit, made before any trial of it starts."""
        self._woken.clear()
        with self._lock, self.storage.batch() as batch:
            self._note_the_time()
            self._follow_storage()
            self._enforce_trial_time_limit()
            for trial_exit in self.executor.poll():
                self._on_process_exit(trial_exit)
            self._launch_pending(batch)
            self._snapshot_when_due()

    def _start_channels(self) -> None:
        """Serve trials over HTTP and, where the machine allows, over a Unix-domain socket (faster, for trials
        on this machine); write both addresses to the channel file, where trials find a resumed controller."""
        self._remove_left_behind_socket()
        self.channel = HttpChannelServer(self._handle, self.secret, host=self.host).start()
        addresses = {"url": self.channel.url}
        if SocketChannelServer.possible():
            self.local_channel = SocketChannelServer(self._handle, self.secret).start()
            addresses["local_url"] = self.local_channel.url
        write_private(channel_file(self.experiment_dir), json.dumps(addresses))

    def _remove_left_behind_socket(self) -> None:
        """A controller killed before it could stop left its socket; the channel file names it."""
        try:
            previous = json.loads(channel_file(self.experiment_dir).read_text()).get("local_url")
        except (OSError, ValueError, AttributeError):
            return
        if isinstance(previous, str):
            SocketChannelServer.remove_left_behind(previous)

    def _stop_channels(self) -> None:
        for server in (self.channel, self.local_channel):
            if server is not None:
                server.stop()

    def _pause_after(self, error: BaseException) -> None:
        """A failure stops the trials and leaves the experiment PAUSED (resumable); it never ends it. A search
        method's error is said once, by the ControllerFailed that `run()` raises; any other is logged with its
        traceback."""
        if not isinstance(error, SearcherError):
            logger.error("%s", self._failure_message(error), exc_info=True)
        self.executor.shutdown()
        self.storage.set_experiment_state(self.experiment_id, "PAUSED")
        self.machine.stopped_on_failure()

    def _failure_message(self, error: BaseException) -> str:
        what = str(error) if isinstance(error, SearcherError) else f"the controller failed: {error!r}"
        return (f"{what}\nexperiment {self.experiment_id} is PAUSED; once mended, "
                f"`hpt experiment activate {self.experiment_id}` and `hpt experiment resume {self.experiment_id}` "
                "continue it")

    def add_trials(self, count: int) -> None:
        """Extend the search by `count` trials when `run()` starts (`hpt experiment continue`)."""
        self._additional_trials = count

    def request_cancel(self) -> None:
        """Ask for `cancel()` at the loop's next turn: all a signal handler may do (it only sets a flag)."""
        self._cancel_requested = True

    def cancel(self) -> None:
        """End every trial gracefully (they checkpoint and exit); the experiment ends CANCELED."""
        with self._lock:
            for trial in self.machine.cancel():
                self.executor.terminate(trial.trial_id)

    def _follow_storage(self) -> None:
        """Carry out `hpt experiment pause / activate / cancel`, which change the state in storage, and a
        cancel requested by a signal."""
        if self._cancel_requested and not self.machine.cancelling:
            self.cancel()
        if time.monotonic() - self._followed_at < FOLLOW_STORAGE_SECONDS:
            return
        self._followed_at = time.monotonic()
        state = self.storage.get_experiment(self.experiment_id).state
        if state == "CANCELED" and not self.machine.cancelling:
            self.cancel()
        self.machine.paused = state == "PAUSED"

    @property
    def time_is_up(self) -> bool:
        """`max_time` has passed: no new trials; running ones finish their current unit."""
        return time.monotonic() >= self._deadline

    def _enforce_trial_time_limit(self) -> None:
        """A trial attempt running longer than `max_trial_time` is stopped; it counts as an error (restartable)."""
        limit = self.config.max_trial_time
        if limit is None:
            return
        for trial in list(self.machine.alive.values()):
            if not trial.timed_out and time.monotonic() - self._launched_at[trial.trial_id] > limit:
                logger.warning("trial %d ran longer than max_trial_time (%ss); stopping it", trial.trial_id, limit)
                self.machine.ran_too_long(trial)
                self.executor.terminate(trial.trial_id)

    def _note_the_time(self) -> None:
        """Tell the state machine whether `max_time` has passed before it hears of anything now: a trial that
        exits or reports after it leads to no new trial and no further unit."""
        self.machine.time_is_up = self.time_is_up

    def _finished(self) -> bool:
        with self._lock:
            if self._failure is not None:
                raise self._failure
            self._note_the_time()
            return self.machine.finished()

    # --- snapshots and resume ---------------------------------------------------------------

    def _snapshot_when_due(self) -> None:
        due = self.machine.events_since_snapshot >= SNAPSHOT_EVENTS or (
            self.machine.events_since_snapshot and time.monotonic() - self._snapshot_at >= SNAPSHOT_SECONDS)
        if due and self.machine.idle:
            self._save_snapshot()

    def _save_snapshot(self) -> None:
        """The machine's state, with the search method's for the dashboard and its progress."""
        snapshot = self.machine.snapshot()
        self.storage.save_snapshot(self.experiment_id, snapshot)
        self.storage.save_searcher_state(self.experiment_id, snapshot["searcher"], self.searcher.progress())
        self._snapshot_at = time.monotonic()

    def _resume(self) -> None:
        """Rebuild from storage (stopping what an earlier controller left running); settle what the crash cut off."""
        rebuild(self.machine, self.storage, self.experiment_id, self.executor.recover)
        self._register_checkpoints_left_on_disk()
        self.machine.settle(self._stored_validations)
        self._save_snapshot()

    def _stored_validations(self, trial: Trial) -> list[tuple[int, Mapping[str, Any]]]:
        return [(self.machine.units.to_searcher(record.batches, record.epochs), record.metrics)
                for record in self.storage.metrics(trial_id=trial.trial_id, kind="validation")]

    def _register_checkpoints_left_on_disk(self) -> None:
        """Checkpoints that this experiment's trials finished saving while no controller could register them:
        only those whose metadata (written by the trial) names this experiment's uuid and one of its trials."""
        known = {checkpoint.id for checkpoint in self.storage.checkpoints(experiment_id=self.experiment_id,
                                                                           include_deleted=True)}
        for name, metadata in checkpoint_storage.completed_checkpoints(self.checkpoint_root):
            trial = self.machine.by_trial_id.get(metadata.get("trial_id"))
            ours = metadata.get("experiment_uuid") == self.experiment_uuid and trial is not None
            if name in known or not CHECKPOINT_ID.fullmatch(name) or not ours:
                continue
            batches, epochs = int(metadata["batches"]), int(metadata["epochs"])
            self._add_checkpoint(trial, name, batches, epochs, metadata.get("metadata") or {})

    def _add_checkpoint(self, trial: Trial, checkpoint_id: str, batches: int, epochs: int,
                        metadata: dict[str, Any]) -> None:
        self.storage.add_checkpoint(trial.trial_id, checkpoint_id, path=checkpoint_storage.join(self.checkpoint_root,
                                                                                               checkpoint_id),
                                    batches=batches, epochs=epochs,
                                    length=self.machine.units.to_searcher(batches, epochs), metadata=metadata)
        self.machine.checkpointed(trial, batches, epochs)

    # --- processes --------------------------------------------------------------------------

    def _launch_pending(self, batch: Batch) -> None:
        """Launch the pending trials that are ready, up to `max_concurrent_trials`. Trials' requests are answered
        while a process starts (`_launch`), so what they changed is read again before each launch."""
        limit = self.config.searcher.max_concurrent_trials or math.inf
        for request_id in list(self.machine.pending):
            if self.machine.paused or self.time_is_up or len(self.machine.alive) >= limit:
                return
            if request_id not in self.machine.pending:  # ended or launched meanwhile
                continue
            trial = self.trials[request_id]
            if not self.restore_points.ready_to_launch(trial):
                continue
            spec = self._launch_spec(trial, attempt=trial.attempt + 1)
            if not self.executor.can_launch(spec):
                return  # its GPUs are busy (a trial's end frees them) or an interpreter is about to be ready for it
            self._launch(trial, spec, batch)

    def _trial_variables(self) -> dict[str, str]:
        """What every trial's environment has beside the controller's: this interpreter's bin first on PATH, and
        the experiment file's variables."""
        return {"PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
                **self.config.environment.variables}

    def _launch_spec(self, trial: Trial, attempt: int) -> LaunchSpec:
        env = {
            **self._trial_variables(),
            "HPT_CONTROLLER_URL": self._channel_url_for_trials(),
            "HPT_CHANNEL_FILE": str(channel_file(self.experiment_dir)),
            "HPT_SECRET": attempt_secret(self.secret, trial.trial_id, attempt),
            "HPT_EXPERIMENT_ID": str(self.experiment_id),
            "HPT_TRIAL_ID": str(trial.trial_id),
            "HPT_ATTEMPT": str(attempt),
        }
        return LaunchSpec(
            trial_id=trial.trial_id, attempt=attempt, command=self.config.entrypoint or "", env=env,
            log_path=str(trial_log(self.experiment_dir, trial.trial_id)),
            slots=self.config.resources.slots_per_trial,
        )

    def _channel_url_for_trials(self) -> str:
        """The socket for trials on this machine; HTTP when the executor runs them elsewhere (it names the
        address they reach the controller at)."""
        if self.local_channel is not None and self.executor.controller_host is None:
            return self.local_channel.url
        return self.channel.url

    def _launch(self, trial: Trial, spec: LaunchSpec, batch: Batch) -> None:
        self.executor.ensure_stopped(trial.trial_id)
        self.machine.launched(trial, spec.attempt)
        self._launched_at[trial.trial_id] = time.monotonic()
        self.storage.update_trial(trial.trial_id, state="RUNNING", started_at=_now(), restarts=trial.restarts)
        start = json.dumps(self._start_answer(trial))
        if len(start) <= START_VARIABLE_BYTES:  # the answer to its "start" call at launch: one request fewer
            spec.env[START_VARIABLE] = start
        batch.commit()  # what led to the launch, and the launch, are in storage before the process starts
        self._lock.release()  # the other trials' requests are answered while this one's process starts
        try:
            self.executor.launch(spec)
        finally:
            self._lock.acquire()
        notify("hpt_trial_started", experiment_id=self.experiment_id, trial_id=trial.trial_id,
               request_id=trial.request_id, hparams=trial.hparams)

    def _on_process_exit(self, trial_exit: TrialExit) -> None:
        trial = self.machine.by_trial_id.get(trial_exit.trial_id)
        if trial is None or trial_exit.attempt != trial.attempt or not trial.process_alive:
            return
        self.machine.exited(trial, trial_exit.returncode)

    # --- the channel ------------------------------------------------------------------------

    def _handle(self, requests: Sequence[Request]) -> list[Any]:
        """Answer each request: its reply, or the exception that refuses it. The reports among them are stored
        in one group commit."""
        answers: list[Any] = [None] * len(requests)
        reports = [index for index, request in enumerate(requests) if request.name in REPORT_CALLS]
        for index, request in enumerate(requests):
            if request.name not in REPORT_CALLS:
                answers[index] = self._answer(request)
        for index, answer in zip(reports, self._on_reports([requests[index] for index in reports])):
            answers[index] = answer
        self._woken.set()  # what the trials said may let the loop launch or end something now
        return answers

    def _answer(self, request: Request) -> Any:
        try:
            if request.name not in self._handlers:
                raise ChannelRefused(404, f"no such endpoint: {request.name}")
            if self._resuming:
                self._sender_named(request.body, request.sender)
                return self._stop_while_resuming()
            with self._lock, self.storage.batch():
                return self._handlers[request.name](self._identify(request.body, request.sender), request.body)
        except SearcherError as error:
            return self._stop_on(error)
        except Exception as error:
            return error

    def _stop_on(self, error: SearcherError) -> dict[str, Any]:
        """The loop stops the experiment on a search method's error; the trial is told to stop now."""
        with self._lock:
            self._failure = self._failure or error
            return {"decision": "stop", "checkpoint": False, "decision_seq": self._next_decision_seq()}

    def _identify(self, body: Mapping[str, Any], sender: Sender) -> Trial:
        trial_id, attempt = self._sender_named(body, sender)
        trial = self.machine.by_trial_id.get(trial_id)
        if trial is None:
            raise ChannelRefused(401, f"trial {trial_id!r} does not belong to this experiment")
        if attempt != trial.attempt or not trial.process_alive:
            raise ChannelRefused(409, f"attempt {attempt!r} of trial {trial.trial_id} is not the live one")
        return trial

    @staticmethod
    def _sender_named(body: Mapping[str, Any], sender: Sender) -> Sender:
        """The (trial id, attempt) the request names, which must be the sender's own: a trial's secret speaks
        for that trial's attempt only."""
        named = fields.identifier(body, "trial_id"), fields.identifier(body, "attempt")
        if named != sender:
            raise ChannelRefused(401, f"the secret of trial {sender[0]} attempt {sender[1]} cannot speak for "
                                      f"trial {named[0]} attempt {named[1]}")
        return named

    def _decision(self, trial: Trial) -> dict[str, Any]:
        """What the trial is to do now, numbered so that it never follows an older answer over a newer one."""
        return {**self.machine.decision(trial), "decision_seq": self._next_decision_seq()}

    def _next_decision_seq(self) -> int:
        """Increasing across the experiment's controllers too (a resumed controller's answers are newer)."""
        with self._decision_seq_lock:
            self._decision_seq = max(self._decision_seq + 1, time.time_ns())
            return self._decision_seq

    def _stop_while_resuming(self) -> dict[str, Any]:
        """While this controller takes over from a dead one, trials the dead one started still deliver what
        they held: their reports are stored (once), their checkpoints found on disk, and they are told to stop
        (they start again from their restore point once the experiment runs)."""
        return {"decision": "stop", "checkpoint": True, "decision_seq": self._next_decision_seq()}

    def _reports_in(self, request: Request, trial_id: int, attempt: int) -> list[Report]:
        if request.name == "report":
            return [self._report_of(request.body, trial_id, attempt)]
        reports = []
        for index, item in enumerate(fields.objects(request.body, "reports")):
            with fields.within(f"reports[{index}]"):
                reports.append(self._report_of(item, trial_id, attempt))
        return reports

    def _report_of(self, body: Mapping[str, Any], trial_id: int, attempt: int) -> Report:
        kind = fields.choice(body, "kind", ("training", "validation"))
        searcher_metric = self.config.searcher.metric if kind == "validation" else None
        metrics, batches, epochs = (fields.metrics(body, "metrics", searcher_metric), fields.count(body, "batches"),
                                    fields.count(body, "epochs", default=0))
        return Report(trial_id, attempt, fields.count(body, "seq"), kind, metrics, batches, epochs,
                      length=self.machine.units.to_searcher(batches, epochs))

    def _on_start(self, trial: Trial, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._start_answer(trial)

    def _start_answer(self, trial: Trial) -> dict[str, Any]:
        """What a trial needs to begin; given in its environment at launch (`START_VARIABLE`) or asked for."""
        units = self.machine.units
        return {
            "experiment_id": self.experiment_id,
            "experiment_uuid": self.experiment_uuid,
            "request_id": trial.request_id,
            "hparams": trial.hparams,
            "seed": trial.seed,
            "unit": units.trial_unit,
            "records_per_epoch": self.config.records_per_epoch,
            "metric": self.config.searcher.metric,
            "checkpoint_policy": self.config.checkpoint_policy,
            "max_length": units.longest_for_trial(),
            "checkpoint_root": self.checkpoint_root,
            "restore": self.restore_points.told(trial),
            "wait_limit_seconds": self._wait_limit(trial),
            **self._decision(trial),
        }

    def _wait_limit(self, trial: Trial) -> float | None:
        """How long the trial may wait for a controller that went away: until `max_trial_time` or `max_time`
        would end it (None: no limit)."""
        now = time.monotonic()
        limits = [self._deadline - now]
        if self.config.max_trial_time is not None:
            limits.append(self._launched_at[trial.trial_id] + self.config.max_trial_time - now)
        limit = min(limits)
        return None if math.isinf(limit) else max(0.0, limit)

    def _on_reports(self, requests: Sequence[Request]) -> list[Any]:
        """Store the requests' reports once each, then tell the state machine about those that were not repeats;
        answer each request with its trial's decision (or the error that refuses it: then none of its reports is
        stored). Training reports go into one group commit outside the controller's lock; a validation, which
        the search method acts on, is stored in the same commit as the events and operations it leads to."""
        resuming = self._resuming  # the lock is the rebuild's until it ends: reports are stored meanwhile
        answers: list[Any] = [None] * len(requests)
        accepted: list[tuple[int, Trial | None, list[Report], bool]] = []
        with contextlib.nullcontext() if resuming else self._lock:
            for index, request in enumerate(requests):
                try:
                    trial_id, attempt = self._sender_named(request.body, request.sender)
                    trial = None if resuming else self._identify(request.body, request.sender)
                    stop_requested = fields.flag(request.body, "stop_requested")
                    accepted.append((index, trial, self._reports_in(request, trial_id, attempt), stop_requested))
                except Exception as error:
                    answers[index] = error
        if not resuming and any(report.kind == "validation" for _, _, reports, _ in accepted for report in reports):
            with self._lock, self.storage.batch():  # the validation and what it leads to: one commit
                return self._store_and_tell(accepted, answers, self.storage.add_reports, locked=True)
        return self._store_and_tell(accepted, answers, self._group_commit.store, locked=not resuming)

    def _store_and_tell(self, accepted: Sequence[tuple[int, Trial | None, list[Report], bool]], answers: list[Any],
                        store: Callable[[Sequence[Report]], list[bool]], locked: bool) -> list[Any]:
        """Store the accepted requests' reports with `store`, then tell the state machine (under the controller's
        lock when `locked`) of those that were new, filling in each request's answer."""
        try:
            stored = store([report for _, _, reports, _ in accepted for report in reports])
        except Exception as error:
            for index, *_ in accepted:
                answers[index] = error
            return answers
        with self._lock if locked else contextlib.nullcontext(), self.storage.batch():
            for (index, trial, reports, stop_requested), stored_now in zip(
                    accepted, per_group(stored, [reports for _, _, reports, _ in accepted])):
                answers[index] = self._stop_while_resuming() if trial is None else \
                    self._reported(trial, reports, stored_now, stop_requested)
        return answers

    def _reported(self, trial: Trial, reports: Sequence[Report], stored_now: Sequence[bool],
                  stop_requested: bool) -> dict[str, Any]:
        try:
            self._note_the_time()
            for report, new in zip(reports, stored_now):
                if new:
                    notify("hpt_metrics_reported", experiment_id=self.experiment_id, trial_id=trial.trial_id,
                           kind=report.kind, metrics=report.metrics, batches=report.batches, epochs=report.epochs)
                    self.machine.reported(trial, report.kind, report.metrics, report.batches, report.epochs,
                                          stop_requested)
            return self._decision(trial)
        except SearcherError as error:
            return self._stop_on(error)

    def _on_checkpoint(self, trial: Trial, body: Mapping[str, Any]) -> dict[str, Any]:
        """Register a finished checkpoint; its path is ours (the checkpoint root and its id), never the request's."""
        checkpoint_id = fields.text(body, "checkpoint_id")
        batches, epochs = fields.count(body, "batches"), fields.count(body, "epochs", default=0)
        metadata = fields.json_object(body, "metadata", default={})
        if not CHECKPOINT_ID.fullmatch(checkpoint_id):
            raise ValueError(f"checkpoint {checkpoint_id!r} is not a checkpoint id (a UUID)")
        path = checkpoint_storage.join(self.checkpoint_root, checkpoint_id)
        if not checkpoint_storage.is_complete(path):
            raise ValueError(f"checkpoint {checkpoint_id!r} is not a finished checkpoint in {self.checkpoint_root}")
        if not self._registered(trial, checkpoint_id):  # a repeat of a request whose answer was lost
            self._add_checkpoint(trial, checkpoint_id, batches, epochs, metadata)
            notify("hpt_checkpoint_saved", experiment_id=self.experiment_id, trial_id=trial.trial_id,
                   checkpoint_id=checkpoint_id, metadata=metadata)
        return self._decision(trial)

    def _registered(self, trial: Trial, checkpoint_id: str) -> bool:
        try:
            checkpoint = self.storage.get_checkpoint(checkpoint_id)
        except RecordNotFound:
            return False
        if checkpoint.trial_id != trial.trial_id:
            raise ChannelRefused(409, f"checkpoint {checkpoint_id!r} belongs to another trial")
        return True

    def _on_status(self, trial: Trial, body: Mapping[str, Any]) -> dict[str, Any]:
        self.machine.asked_to_stop(trial, fields.flag(body, "stop_requested"))
        return self._decision(trial)

    def _on_exit(self, trial: Trial, body: Mapping[str, Any]) -> dict[str, Any]:
        if body.get("reason") == "INVALID_HP":
            self.machine.said_invalid_hp(trial)
        return self._decision(trial)

    # --- what the CLI shows -----------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        with self._lock:
            counts = collections.Counter(trial.state for trial in self.trials.values())
            best = self.machine.best_value()
            numbers = {trial.trial_id: trial.request_id for trial in self.trials.values()}
            return {"states": dict(counts),
                    "best": None if best is None else {"value": best[0], "trial_id": best[1],
                                                       "trial_number": numbers.get(best[1])},
                    "progress": self.searcher.progress(), "elapsed": time.monotonic() - self.started_at}


def _now() -> datetime:
    return datetime.now(timezone.utc)
