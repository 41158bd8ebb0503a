"""One trial as the lifecycle sees it, its states, and why it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpt_core.operations import ExitedReason

TERMINAL_STATES = ("COMPLETED", "CANCELED", "ERROR")


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


_EXITED_REASONS = {
    EndReason.INVALID_HP: ExitedReason.INVALID_HP,
    EndReason.EARLY_STOP: ExitedReason.USER_REQUESTED_STOP,
    EndReason.CANCELED: ExitedReason.USER_CANCELED,
    EndReason.ERROR_AFTER_RESTARTS: ExitedReason.ERRORED,
    EndReason.TRIAL_TIME_LIMIT: ExitedReason.ERRORED,
}


def exited_reason(end_reason: str) -> ExitedReason | None:
    """What the search method is told when a trial ended for `end_reason` (None: the method closed it)."""
    if end_reason.startswith(EndReason.INVALID_METRIC):
        return ExitedReason.ERRORED
    return _EXITED_REASONS.get(end_reason)


@dataclass
class Trial:
    """The lifecycle's view of one trial (storage mirrors what a user reads of it)."""

    trial_id: int
    request_id: int
    hparams: dict[str, Any]
    seed: int
    parent_request_id: int | None = None
    parent_length: int = 0
    """The length the parent had validated when this child was created: the newest parent checkpoint it may start from."""
    state: str = "PENDING"
    end_reason: str | None = None
    target: int | None = None
    length_done: int = 0
    """The longest target the trial reached and the search method heard of (in the method's unit)."""
    length_trained: int = 0
    """The longest length the trial reported or checkpointed (in the method's unit), whatever its end."""
    attempt: int = 0
    restarts: int = 0
    process_alive: bool = False
    close_requested: bool = False
    stop_requested: bool = False
    invalid_hp: bool = False
    fatal_error: str | None = None
    checkpoint_requested: bool = False
    told_to_end: bool = False
    timed_out: bool = False

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL_STATES
