"""Where trials run: the interface the controller drives, whatever runs the processes.

An executor starts a trial's command, reports when it ends, and stops it on request. The
controller owns every decision (which trial, which attempt, when to stop); an executor only
carries them out and keeps two processes of one trial from ever running at once.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Mapping, Optional

from hpt_core.config import ExecutorOptions, ExperimentConfig


class ExecutorError(RuntimeError):
    """An executor cannot carry out a request (e.g. a trial whose earlier attempt is still alive)."""


class ResourcesUnavailable(ExecutorError):
    """The resources a trial needs are busy now; launching it again later can succeed."""


@dataclass(frozen=True)
class LaunchSpec:
    """One start (an attempt) of a trial: what to run, with which variables, logging where.

    `env` holds hpt's variables for the trial (HPT_*) and the experiment's
    `environment.variables`; they are added on top of the controller's own environment.
    """

    trial_id: int
    attempt: int
    command: str
    env: dict[str, str] = field(hash=False)
    log_path: str
    slots: int = 1

    def __post_init__(self) -> None:
        if not self.command.strip():
            raise ValueError(f"LaunchSpec.command must be a non-empty shell command, but got {self.command!r}")
        if self.slots < 0:
            raise ValueError(f"LaunchSpec.slots must be >= 0 (resources.slots_per_trial), but got {self.slots}")


@dataclass(frozen=True)
class TrialExit:
    """A trial's attempt has ended; `returncode` < 0 means killed by that signal."""

    trial_id: int
    attempt: int
    returncode: int


class Executor(abc.ABC):
    """Base class of every executor; subclasses set `name` (as in `executor.type`) and, when the `executor`
    section takes more fields than `type`, `options_model` (an `ExecutorOptions` subclass that validates them).

    Resources: call `can_launch(spec)` before `launch(spec)`; `launch` raises
    `ResourcesUnavailable` when the trial's resources are busy (wait for an exit and retry), and
    `ExecutorError` for a request that no amount of waiting can satisfy.
    """

    name: ClassVar[str] = ""
    options_model: ClassVar[type[ExecutorOptions]] = ExecutorOptions
    controller_host: Optional[str] = None
    """The address trials reach the controller at, when the executor knows better than the controller's default."""
    wake_listener: Optional[Callable[[], None]] = None
    """Called (from any thread) by executors that can tell at once when a trial's process has ended or a trial that
    had to wait can launch, so that the caller polls now rather than at its next periodic turn."""

    @classmethod
    def for_experiment(cls, config: ExperimentConfig, experiment_dir: str, model_dir: str,
                       experiment_id: int) -> Executor:
        """The executor that runs one experiment's trials (its options are `config.executor`).

        By default `cls(experiment_dir, model_dir, config.searcher.max_concurrent_trials)`.
        """
        return cls(experiment_dir, model_dir, config.searcher.max_concurrent_trials)  # type: ignore[call-arg]

    @abc.abstractmethod
    def launch(self, spec: LaunchSpec) -> None:
        """Start `spec`'s attempt of its trial and return without waiting for it."""

    @abc.abstractmethod
    def poll(self) -> list[TrialExit]:
        """Attempts that ended since the last call, each reported exactly once; never blocks."""

    @abc.abstractmethod
    def running(self) -> set[int]:
        """Ids of the trials that have a live process."""

    @abc.abstractmethod
    def terminate(self, trial_id: int, grace_seconds: float = 10.0) -> None:
        """Ask a trial to stop (SIGTERM), and kill it once `grace_seconds` have passed; `poll` reports the exit."""

    @abc.abstractmethod
    def ensure_stopped(self, trial_id: int, grace_seconds: float = 10.0) -> None:
        """Block until no process of the trial is alive (call it before relaunching a trial).

        A trial still running is stopped as by `terminate(trial_id, grace_seconds)`; one already
        being terminated keeps its earlier deadline. `poll` still reports the exit.
        """

    @abc.abstractmethod
    def shutdown(self, grace_seconds: float = 10.0) -> None:
        """Terminate every trial still running and wait until all of their processes have ended."""

    def recover(self, trial_id: int, grace_seconds: float = 10.0) -> int:
        """After a controller restart: stop any process of the trial that an earlier controller left
        running (gracefully first) and return the last attempt number launched for it (0 if none)."""
        return 0

    def can_launch(self, spec: LaunchSpec) -> bool:
        """Whether `launch(spec)` would find its resources free now (by default: always)."""
        return True

    def prepare(self, command: str, env: Mapping[str, str], slots: int) -> None:
        """Get ready, before the first launch, for trials that run `command` with `env` on `slots` GPUs each
        (by default: nothing to get ready)."""

    def notices(self) -> list[str]:
        """Messages for the user that have not been returned before (each is returned once)."""
        return []

    def start_summary(self) -> str:
        """How trials have started, for the progress line (e.g. `6 warm, 2 cold starts`); "" when not told."""
        return ""


def attempt_header(attempt: int) -> bytes:
    """The line that opens each attempt's output in a trial's log."""
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"=== attempt {attempt} started {started} ===\n".encode()


class TrackingExecutor(Executor):
    """An executor that keeps each trial's live attempt (an object with `spec` and `kill_at`) in `_attempts`,
    the exits not yet polled in `_exits` and the messages not yet returned in `_notices`.

    Subclasses start attempts, send them signals and collect how they ended (`_collect` moves an
    attempt whose processes have all ended from `_attempts` to `_exits`, and escalates an overdue stop).
    """

    def __init__(self) -> None:
        self._attempts: dict[int, Any] = {}
        self._exits: list[TrialExit] = []
        self._notices: list[str] = []

    @abc.abstractmethod
    def _collect(self) -> None:
        """Record the attempts that have ended and kill those whose grace period is over."""

    @abc.abstractmethod
    def _ask_to_stop(self, attempt: Any) -> None:
        """Send SIGTERM to the attempt's processes."""

    def _refuse_while_alive(self, spec: LaunchSpec) -> None:
        """Raise ExecutorError if an earlier attempt of `spec`'s trial still has processes."""
        self._collect()
        earlier = self._attempts.get(spec.trial_id)
        if earlier is not None:
            raise ExecutorError(
                f"trial {spec.trial_id} still has processes of attempt {earlier.spec.attempt}; "
                f"call ensure_stopped({spec.trial_id}) before launching attempt {spec.attempt}"
            )

    def poll(self) -> list[TrialExit]:
        self._collect()
        exits, self._exits = self._exits, []
        return exits

    def running(self) -> set[int]:
        self._collect()
        return set(self._attempts)

    def terminate(self, trial_id: int, grace_seconds: float = 10.0) -> None:
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds must be >= 0, but got {grace_seconds}")
        attempt = self._attempts.get(trial_id)
        if attempt is None:
            return
        deadline = time.monotonic() + grace_seconds
        if attempt.kill_at is None:
            self._ask_to_stop(attempt)
            attempt.kill_at = deadline
        else:
            attempt.kill_at = min(attempt.kill_at, deadline)
        self._collect()

    def ensure_stopped(self, trial_id: int, grace_seconds: float = 10.0) -> None:
        attempt = self._attempts.get(trial_id)
        if attempt is None:
            return
        if attempt.kill_at is None:
            self.terminate(trial_id, grace_seconds)
        while trial_id in self._attempts:
            time.sleep(_WAIT_STEP_SECONDS)
            self._collect()

    def shutdown(self, grace_seconds: float = 10.0) -> None:
        for trial_id in list(self._attempts):
            self.terminate(trial_id, grace_seconds)
        while self._attempts:
            time.sleep(_WAIT_STEP_SECONDS)
            self._collect()

    def notices(self) -> list[str]:
        notices, self._notices = self._notices, []
        return notices


_WAIT_STEP_SECONDS = 0.02
