"""Where trials run: the interface the controller drives, whatever runs the processes.

An executor starts a trial's command, reports when it ends, and stops it on request. The
controller owns every decision (which trial, which attempt, when to stop); an executor only
carries them out and keeps two processes of one trial from ever running at once.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar


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
    """Base class of every executor; subclasses set `name` (as in `executor.type`).

    Resources: call `can_launch(spec)` before `launch(spec)`; `launch` raises
    `ResourcesUnavailable` when the trial's resources are busy (wait for an exit and retry), and
    `ExecutorError` for a request that no amount of waiting can satisfy.
    """

    name: ClassVar[str] = ""

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

    def notices(self) -> list[str]:
        """Messages for the user that have not been returned before (each is returned once)."""
        return []
