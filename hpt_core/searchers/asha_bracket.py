"""One bracket of adaptive ASHA: an asynchronous successive-halving run over a few rungs.

A bracket's state is a plain-JSON dict (kept by `AdaptiveASHASearch`, so that it round-trips
through `state_dict()`); `PromotionBracket` and `StoppingBracket` are views over it that carry
out one event at a time and return the operations it calls for.

The state holds:

- `rung_lengths`, `max_trials`, `max_concurrent_trials`: the bracket's plan;
- `rungs`: per rung, its results best first, each `{"request_id", "loss", "promoted"}`
  (`loss` is null for a trial that exited early: the worst value);
- `trials`: per request id (a string), `{"rung", "status", "exited", "invalid"}`, where `rung` is
  the rung the trial trains towards or last reported at and `status` is `training` (a
  ValidateAfter is outstanding), `waiting` (reported, may still be promoted) or `closed` (the
  bracket will ask nothing more of it).
"""

from __future__ import annotations

import abc
import bisect
import math
from fractions import Fraction
from typing import Any, Callable

from hpt_core.operations import Close, Create, ExitedReason, Operation, ValidateAfter

TRAINING = "training"
WAITING = "waiting"
CLOSED = "closed"

BracketState = dict[str, Any]
Result = dict[str, Any]


def new_bracket_state(rung_lengths: list[int], max_trials: int, max_concurrent_trials: int) -> BracketState:
    """The plain-JSON state of a bracket that has not started."""
    return {
        "rung_lengths": list(rung_lengths),
        "max_trials": max_trials,
        "max_concurrent_trials": max_concurrent_trials,
        "rungs": [[] for _ in rung_lengths],
        "trials": {},
    }


def floor_ratio(count: int, divisor: float) -> int:
    """floor(count / divisor), exactly (no float rounding)."""
    return math.floor(Fraction(count) / Fraction(divisor))


def _rank_key(result: Result) -> tuple[int, float]:
    """Best first; an early exit (loss null) ranks after every reported value."""
    loss = result["loss"]
    return (1, 0.0) if loss is None else (0, loss)


class Bracket(abc.ABC):
    """The parts common to both kinds of bracket: trials, budget, creation, INVALID_HP."""

    def __init__(self, state: BracketState, divisor: float, new_trial: Callable[[], Create],
                 rung_divisor: Callable[[int], float] | None = None) -> None:
        self.state = state
        self.divisor = divisor
        self.new_trial = new_trial
        self.rung_divisor = rung_divisor

    # --- plan ----------------------------------------------------------------------------------

    @property
    def rung_lengths(self) -> list[int]:
        return self.state["rung_lengths"]

    @property
    def top_rung(self) -> int:
        return len(self.rung_lengths) - 1

    @property
    def rungs(self) -> list[list[Result]]:
        return self.state["rungs"]

    @property
    def trials(self) -> dict[str, dict[str, Any]]:
        return self.state["trials"]

    # --- events --------------------------------------------------------------------------------

    def start(self) -> list[Operation]:
        """Create the first min(max_concurrent_trials, max_trials) trials."""
        count = min(self.state["max_concurrent_trials"], self.state["max_trials"])
        return [operation for _ in range(count) for operation in self._create_trial()]

    def add_trial(self) -> list[Operation]:
        """Create one more trial now (`hpt experiment continue` has raised the bracket's budget)."""
        return self._create_trial()

    def on_validation(self, request_id: int, loss: float, length: int) -> list[Operation]:
        """A training trial reached `length`; a report short of its rung's length is ignored."""
        trial = self.trials[str(request_id)]
        if trial["status"] != TRAINING or length < self.rung_lengths[trial["rung"]]:
            return []
        trial["status"] = WAITING
        return self._record(request_id, loss)

    def on_exit(self, request_id: int, reason: ExitedReason) -> list[Operation]:
        """The trial ended early: it will never train again."""
        trial = self.trials[str(request_id)]
        if trial["status"] == CLOSED:
            return []
        was_training = trial["status"] == TRAINING
        trial.update(status=CLOSED, exited=True)
        if reason is ExitedReason.INVALID_HP:
            return self._discard(request_id)
        return self._record(request_id, None) if was_training else []

    # --- queries -------------------------------------------------------------------------------

    def in_flight(self) -> int:
        """Trials with a ValidateAfter outstanding."""
        return sum(trial["status"] == TRAINING for trial in self.trials.values())

    # --- for subclasses ------------------------------------------------------------------------

    @abc.abstractmethod
    def _record(self, request_id: int, loss: float | None) -> list[Operation]:
        """Enter a result (None: the worst) at the trial's rung and decide what follows."""

    def _insert(self, rung_index: int, request_id: int, loss: float | None, after_ties: bool) -> int:
        result = {"request_id": request_id, "loss": loss, "promoted": False}
        search = bisect.bisect_right if after_ties else bisect.bisect_left
        place = search(self.rungs[rung_index], _rank_key(result), key=_rank_key)
        self.rungs[rung_index].insert(place, result)
        return place

    def _divisor_at(self, rung_index: int) -> float:
        """The divisor of promotions out of a rung: `divisor`, unless `rung_divisor` adapts it per rung."""
        return self.divisor if self.rung_divisor is None else self.rung_divisor(rung_index)

    def _budget_allows(self) -> bool:
        counted = sum(not trial["invalid"] for trial in self.trials.values())
        return counted < self.state["max_trials"]

    def _create_trial(self) -> list[Operation]:
        create = self.new_trial()
        self.trials[str(create.request_id)] = {"rung": 0, "status": TRAINING, "exited": False, "invalid": False}
        return [create, ValidateAfter(create.request_id, self.rung_lengths[0])]

    def _create_if_budget_allows(self) -> list[Operation]:
        return self._create_trial() if self._budget_allows() else []

    def _train_to_next_rung(self, request_id: int) -> list[Operation]:
        trial = self.trials[str(request_id)]
        trial.update(rung=trial["rung"] + 1, status=TRAINING)
        return [ValidateAfter(request_id, self.rung_lengths[trial["rung"]])]

    def _close(self, request_id: int) -> list[Operation]:
        """Close a trial that has not exited (an exited one is closed by the controller)."""
        trial = self.trials[str(request_id)]
        if trial["exited"]:
            return []
        trial["status"] = CLOSED
        return [Close(request_id)]

    def _discard(self, request_id: int) -> list[Operation]:
        """INVALID_HP: forget the trial's results; it no longer counts towards max_trials.

        Its replacement starts at once if that keeps the bracket within its concurrency (always,
        for a trial that was training); otherwise the next report that promotes nothing starts it.
        """
        self.trials[str(request_id)]["invalid"] = True
        for rung in self.rungs:
            rung[:] = [result for result in rung if result["request_id"] != request_id]
        if self.in_flight() < self.state["max_concurrent_trials"]:
            return self._create_if_budget_allows()
        return []


class PromotionBracket(Bracket):
    """Asynchronous successive halving that promotes (`stop_once: false`).

    With n results in a rung before a new one, the new trial is promoted if its place among
    them (best first, ties after existing values) is below floor((n+1)/divisor); otherwise, if
    that number grew, the trial at place floor(n/divisor) is promoted unless it was before.
    A report that promotes nothing makes room for a new trial while the budget allows.
    """

    def _record(self, request_id: int, loss: float | None) -> list[Operation]:
        rung_index = self.trials[str(request_id)]["rung"]
        if rung_index == self.top_rung:
            self._insert(rung_index, request_id, loss, after_ties=True)
            operations = self._close(request_id) + self._create_if_budget_allows()
            return operations + self._close_out()
        promoted_id = self._insert_and_promote(rung_index, request_id, loss)
        if promoted_id is None:
            return self._create_if_budget_allows() + self._close_out()
        if self.trials[str(promoted_id)]["exited"]:
            self.trials[str(promoted_id)]["rung"] = rung_index + 1
            return self._record(promoted_id, None)
        return self._train_to_next_rung(promoted_id) + self._close_out()

    def _insert_and_promote(self, rung_index: int, request_id: int, loss: float | None) -> int | None:
        """Enter the result; return the request id this result promotes, if any."""
        rung = self.rungs[rung_index]
        divisor = self._divisor_at(rung_index)
        promoted_before = floor_ratio(len(rung), divisor)
        promoted_now = floor_ratio(len(rung) + 1, divisor)
        place = self._insert(rung_index, request_id, loss, after_ties=True)
        if place < promoted_now:
            candidate = rung[place]
        elif promoted_now > promoted_before:
            candidate = rung[promoted_before]
        else:
            return None
        if candidate["promoted"] or not self._can_be_promoted(candidate["request_id"]):
            return None
        candidate["promoted"] = True
        return candidate["request_id"]

    def _can_be_promoted(self, request_id: int) -> bool:
        """A waiting or exited trial; not one closed already (possible once INVALID_HP shrank a rung)."""
        trial = self.trials[str(request_id)]
        return trial["status"] == WAITING or trial["exited"]

    def _close_out(self) -> list[Operation]:
        """Once the bottom rung is full, close whoever can no longer be promoted, rung by rung."""
        if len(self.rungs[0]) < self.state["max_trials"]:
            return []
        operations: list[Operation] = []
        for rung_index, rung in enumerate(self.rungs):
            if self._has_trials_training_towards(rung_index):
                break
            for result in rung:
                trial = self.trials[str(result["request_id"])]
                if not result["promoted"] and trial["status"] == WAITING:
                    operations += self._close(result["request_id"])
        return operations

    def _has_trials_training_towards(self, rung_index: int) -> bool:
        return any(trial["status"] == TRAINING and trial["rung"] == rung_index for trial in self.trials.values())


class StoppingBracket(Bracket):
    """Asynchronous successive halving that stops (`stop_once: true`).

    A trial that completes a rung continues only if its place among the rung's n results (its
    own included, ties ahead of existing values) is below max(floor(n/divisor), 1); otherwise,
    and at the top rung, it is closed and a new trial takes its place while the budget allows.
    """

    def _record(self, request_id: int, loss: float | None) -> list[Operation]:
        trial = self.trials[str(request_id)]
        rung = self.rungs[trial["rung"]]
        place = self._insert(trial["rung"], request_id, loss, after_ties=False)
        if trial["exited"]:
            return self._create_if_budget_allows()
        if trial["rung"] < self.top_rung and place < max(floor_ratio(len(rung), self._divisor_at(trial["rung"])), 1):
            rung[place]["promoted"] = True
            return self._train_to_next_rung(request_id)
        return self._close(request_id) + self._create_if_budget_allows()
