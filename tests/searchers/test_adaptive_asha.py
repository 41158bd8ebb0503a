"""`searcher.name: adaptive_asha`: the plan, promotions, stopping, early exits, outcome, progress, state.

Every expected number below is worked out by hand from Determined's semantics (the arithmetic
is in the comments); events are fed directly, no trial runs.
"""

from __future__ import annotations

import json
import random
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpt_core import create_searcher
from hpt_core.errors import SearcherError
from hpt_core.searchers import Close, Create, ExitedReason, Operation, SearchMethod, Shutdown, ValidateAfter
from hpt_core.searchers.adaptive_asha import BracketPlan, TrialPlacement, largest_exponent

SPACE = {"lr": {"type": "log", "minval": -4, "maxval": -1}, "layers": {"type": "int", "minval": 1, "maxval": 4}}


def make(seed: int = 0, **searcher: Any) -> SearchMethod:
    return create_searcher({"searcher": {"name": "adaptive_asha", "metric": "loss", **searcher},
                            "hyperparameters": SPACE}, seed=seed)


def created(operations: list[Operation]) -> list[int]:
    return [operation.request_id for operation in operations if isinstance(operation, Create)]


def without_hparams(operations: list[Operation]) -> list[Any]:
    """Operations with each Create shown as ("Create", request_id), for readable expectations."""
    return [("Create", op.request_id) if isinstance(op, Create) else op for op in operations]


def plan(searcher: SearchMethod) -> list[tuple[tuple[int, ...], int, int]]:
    return [(bracket.rung_lengths, bracket.max_trials, bracket.max_concurrent_trials)
            for bracket in searcher.brackets()]


# --- the plan ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("searcher", "expected"), [
    pytest.param(
        # R = min(5, floor(log4 16)+1 = 3, floor(log4 16)+1 = 3) = 3; aggressive: one bracket of 3 rungs
        # with all 16 trials; M = max(16, 1) = 16; rungs 16/4^2 = 1, 16/4 = 4, 16.
        dict(mode="aggressive", max_length=16, divisor=4, max_trials=16),
        [((1, 4, 16), 16, 16)],
        id="aggressive"),
    pytest.param(
        # R = min(5, log10 1000 + 1 = 4 (exactly 3, not 2.999...), log10 1000 + 1 = 4) = 4.
        # standard: floor(3/2)+1 = 2 ... 4 rungs, most first: 4, 3, 2.
        # w = 10^3/4 = 250, 10^2/3 = 33.33, 10/2 = 5; sum = 865/3.
        # trials: floor(250*3/865*1000) = floor(867.05) = 867, floor(100000/865) = floor(115.6) = 115,
        # floor(15000/865) = floor(17.34) = 17; 999 allocated, remainder 1 to the first: 868.
        # M = max(16, 3) = 16 = 3*5 + 1: 6, 5, 5.
        # rungs of 4: 1000/1000 = 1, 10, 100, 1000; of 3: 10, 100, 1000; of 2: 100, 1000.
        dict(mode="standard", max_length=1000, divisor=10, max_trials=1000),
        [((1, 10, 100, 1000), 868, 6), ((10, 100, 1000), 115, 5), ((100, 1000), 17, 5)],
        id="standard-log-robust"),
    pytest.param(
        # R = min(5, 3+1, floor(log10 100)+1 = 3) = 3; standard: floor(2/2)+1 = 2 ... 3: brackets 3, 2.
        # w = 100/3, 10/2 = 5; sum = 115/3; trials floor(100/115*100) = 86, floor(15/115*100) = 13;
        # 99 allocated, remainder 1: 87, 13. M = 16: 8, 8.
        dict(max_length=1000, divisor=10, max_trials=100),
        [((10, 100, 1000), 87, 8), ((100, 1000), 13, 8)],
        id="standard-two-brackets"),
    pytest.param(
        # R = min(5, floor(log4 8)+1 = 2, floor(log4 6)+1 = 2) = 2; conservative: 1 ... 2 -> 2, 1.
        # w = 4/2 = 2, 1/1 = 1; trials floor(2/3*6) = 4, floor(1/3*6) = 2. M = max(2, 2) = 2: 1, 1.
        # rungs of 2: floor(8/4) = 2, 8; of 1: 8.
        dict(mode="conservative", max_length=8, max_trials=6, max_concurrent_trials=2),
        [((2, 8), 4, 1), ((8,), 2, 1)],
        id="conservative"),
    pytest.param(
        # R = min(5, floor(log4 256)+1 = 5, floor(log4 100)+1 = 4) = 4; standard: 2 ... 4 -> 4, 3, 2.
        # w = 64/4 = 16, 16/3, 4/2 = 2; sum = 70/3; trials floor(4800/70) = 68, floor(1600/70) = 22,
        # floor(600/70) = 8; 98 allocated, remainder 2: 70. max_concurrent_trials 0: each bracket
        # max(the last bracket's 8 trials, divisor 4) = 8. rungs of 4: 256/64 = 4, 16, 64, 256.
        dict(max_length=256, max_trials=100, max_concurrent_trials=0),
        [((4, 16, 64, 256), 70, 8), ((16, 64, 256), 22, 8), ((64, 256), 8, 8)],
        id="no-concurrency-limit"),
    pytest.param(
        # bracket_rungs [1, 3] sorted most first: 3, 1. w = 2.5^2/3 = 6.25/3, 1; sum = 9.25/3;
        # trials floor(6.25/9.25*10) = floor(6.76) = 6, floor(3/9.25*10) = floor(3.24) = 3; remainder 1: 7.
        # M = max(3, 2) = 3 = 2*1 + 1: 2, 1. rungs of 3: floor(100/6.25) = 16, floor(100/2.5) = 40, 100.
        dict(bracket_rungs=[1, 3], divisor=2.5, max_length=100, max_trials=10, max_concurrent_trials=3),
        [((16, 40, 100), 7, 2), ((100,), 3, 1)],
        id="bracket-rungs-float-divisor"),
    pytest.param(
        # every bracket gets at least one trial even past max_trials: w = 4/3, 1, 1 -> floor(0.8), floor(0.6),
        # floor(0.6) all raised to 1; 3 allocated > 2, no remainder. M = max(1, 3) = 3: 1, 1, 1.
        dict(bracket_rungs=[2, 3, 1], divisor=2, max_length=8, max_trials=2, max_concurrent_trials=1),
        [((2, 4, 8), 1, 1), ((4, 8), 1, 1), ((8,), 1, 1)],
        id="more-brackets-than-trials"),
    pytest.param(
        # max_rungs caps R: min(2, floor(log2 64)+1 = 7, floor(log2 64)+1 = 7) = 2; aggressive: one bracket.
        dict(mode="aggressive", max_rungs=2, divisor=2, max_length=64, max_trials=64, max_concurrent_trials=4),
        [((32, 64), 64, 4)],
        id="max-rungs"),
])
def test_plan_of_rungs_brackets_trials_and_concurrency(searcher, expected) -> None:
    assert plan(make(**searcher)) == expected


def test_logs_are_exact() -> None:
    assert [largest_exponent(10.0, 1000), largest_exponent(10.0, 999), largest_exponent(4.0, 4)] == [3, 2, 1]


def test_each_bracket_starts_its_concurrency_and_routes_events_to_itself() -> None:
    # conservative plan above: bracket 0 rungs (2, 8), 4 trials, 1 at a time; bracket 1 rung (8), 2 trials, 1.
    searcher = make(mode="conservative", max_length=8, max_trials=6, max_concurrent_trials=2)
    assert without_hparams(searcher.initial_operations()) == [
        ("Create", 1), ValidateAfter(1, 2), ("Create", 2), ValidateAfter(2, 8)]
    # A one-rung bracket trains straight to max_length and closes; its budget (2) allows a new trial.
    assert without_hparams(searcher.on_validation_completed(2, 0.3, 8)) == [
        Close(2), ("Create", 3), ValidateAfter(3, 8)]
    # Bracket 0 rung 0 holds one result: nothing promoted (fewer than divisor 4), so a new trial.
    assert without_hparams(searcher.on_validation_completed(1, 0.5, 2)) == [("Create", 4), ValidateAfter(4, 2)]
    assert searcher.placements() == {
        1: TrialPlacement(0, 0, "waiting"), 2: TrialPlacement(1, 0, "closed"),
        3: TrialPlacement(1, 0, "training"), 4: TrialPlacement(0, 0, "training")}
    assert searcher.brackets()[0] == BracketPlan((2, 8), 4, 1) and searcher.brackets()[0].num_rungs == 2


def test_hyperparameters_come_from_the_space_with_the_searchers_generator() -> None:
    first, second = make(seed=5, max_length=16, max_trials=8), make(seed=5, max_length=16, max_trials=8)
    creates = [op for op in first.initial_operations() if isinstance(op, Create)]
    assert creates == [op for op in second.initial_operations() if isinstance(op, Create)]
    assert all(set(op.hparams) == {"lr", "layers"} and 1e-4 <= op.hparams["lr"] <= 0.1 for op in creates)


# --- promotion-based (stop_once: false) ------------------------------------------------------------

# max_length 4, divisor 2, max_trials 4, 2 at a time: R = min(5, log2 4 + 1, log2 4 + 1) = 3,
# one bracket, rungs 4/4 = 1, 4/2 = 2, 4.
SMALL = dict(mode="aggressive", max_length=4, divisor=2, max_trials=4, max_concurrent_trials=2)


def test_promotions_ties_new_trials_and_closing_rung_by_rung() -> None:
    searcher = make(**SMALL)
    assert created(searcher.initial_operations()) == [1, 2]
    # rung 0: n = 0, floor(1/2) = 0 promoted -> nothing; budget 2 < 4 -> a new trial.
    assert without_hparams(searcher.on_validation_completed(1, 0.5, 1)) == [("Create", 3), ValidateAfter(3, 1)]
    # n = 1: floor(2/2) = 1 > floor(1/2) = 0; 0.9 lands at place 1 (not < 1), so the trial at place 0,
    # trial 1 (which reported earlier and waits), is promoted: it resumes to rung 1.
    assert searcher.on_validation_completed(2, 0.9, 1) == [ValidateAfter(1, 2)]
    # n = 2: 0.5 ties trial 1 and goes after it, place 1, not < floor(3/2) = 1; floor(2/2) = 1 unchanged:
    # nothing promoted, so a new trial (the last of the budget).
    assert without_hparams(searcher.on_validation_completed(3, 0.5, 1)) == [("Create", 4), ValidateAfter(4, 1)]
    # n = 3: 0.2 lands at place 0 < floor(4/2) = 2: promoted now. Rung 0 now holds all 4 trials and
    # nobody trains towards it: close its unpromoted trials (3, 2 in rank order); rung 1 still has
    # trials 1 and 4 training towards it, so stop there.
    assert searcher.on_validation_completed(4, 0.2, 1) == [ValidateAfter(4, 2), Close(3), Close(2)]
    # rung 1: n = 0, nothing promoted, no budget; trial 4 still trains towards rung 1.
    assert searcher.on_validation_completed(1, 0.4, 2) == []
    # n = 1: 0.3 at place 0 < floor(2/2) = 1: promoted to the top; rung 1 is then done: close trial 1.
    assert searcher.on_validation_completed(4, 0.3, 2) == [ValidateAfter(4, 4), Close(1)]
    assert searcher.on_validation_completed(4, 0.1, 4) == [Close(4)]
    assert [searcher.on_trial_closed(request_id) for request_id in (3, 2, 1)] == [[], [], []]
    assert searcher.on_trial_closed(4) == [Shutdown(failure=False, cancel=False)]


def test_nothing_is_promoted_before_divisor_results_then_the_best_waiting_trial_is() -> None:
    # divisor 4, 16 batches, 16 trials, 4 at a time: rungs 1, 4, 16.
    searcher = make(mode="aggressive", max_length=16, divisor=4, max_trials=16, max_concurrent_trials=4)
    assert created(searcher.initial_operations()) == [1, 2, 3, 4]
    # Results 1-3: floor((n+1)/4) = 0, so even the best (trial 1) waits; each report makes room for a new trial.
    assert created(searcher.on_validation_completed(1, 0.1, 1)) == [5]
    assert created(searcher.on_validation_completed(2, 0.5, 1)) == [6]
    assert created(searcher.on_validation_completed(3, 0.6, 1)) == [7]
    # The fourth result (n = 3): floor(4/4) = 1 > 0, and 0.7 is at place 3: trial 1, three reports ago, resumes.
    assert searcher.on_validation_completed(4, 0.7, 1) == [ValidateAfter(1, 4)]


def test_smaller_is_better_false_promotes_the_largest_metric() -> None:
    searcher = make(smaller_is_better=False, **SMALL)
    searcher.initial_operations()
    searcher.on_validation_completed(1, {"loss": 0.5}, 1)
    # Negated: -0.9 < -0.5, so trial 2 lands at place 0 < floor(2/2) = 1 and is promoted itself.
    assert searcher.on_validation_completed(2, {"loss": 0.9}, 1) == [ValidateAfter(2, 2)]


def test_an_errored_trial_counts_as_the_worst_at_the_rung_it_trained_towards() -> None:
    searcher = make(**SMALL)
    searcher.initial_operations()
    searcher.on_validation_completed(1, 0.5, 1)  # creates trial 3
    # Trial 2 errors on its way to rung 0: recorded there as the worst (n = 1, place 1, floor(2/2) = 1 > 0),
    # so trial 1 at place 0 is promoted; the errored trial itself gets no Close (the controller closes it).
    assert searcher.on_trial_exited_early(2, ExitedReason.ERRORED) == [ValidateAfter(1, 2)]
    assert searcher.on_trial_closed(2) == []
    assert searcher.placements()[2] == TrialPlacement(0, 0, "closed")


def test_a_stopped_trial_after_its_promotion_counts_as_worst_at_the_next_rung() -> None:
    searcher = make(**SMALL)
    searcher.initial_operations()
    searcher.on_validation_completed(1, 0.5, 1)  # creates trial 3
    assert searcher.on_validation_completed(2, 0.4, 1) == [ValidateAfter(2, 2)]  # place 0 < 1: promoted
    # USER_REQUESTED_STOP arrives after that validation: trial 2 was training towards rung 1, so it is
    # the worst there (rung 1: n = 0, nothing promoted) and its place is taken by a new trial.
    assert without_hparams(searcher.on_trial_exited_early(2, "USER_REQUESTED_STOP")) == [
        ("Create", 4), ValidateAfter(4, 1)]
    assert searcher.placements()[2] == TrialPlacement(0, 1, "closed")


def test_a_waiting_trial_that_exited_is_recorded_as_worst_at_the_next_rung_when_promoted() -> None:
    searcher = make(**SMALL)
    searcher.initial_operations()
    assert created(searcher.on_validation_completed(1, 0.3, 1)) == [3]  # n = 0: nothing, new trial
    assert searcher.on_validation_completed(2, 0.2, 1) == [ValidateAfter(2, 2)]  # place 0 < floor(2/2)
    assert created(searcher.on_validation_completed(3, 0.4, 1)) == [4]  # place 2, floor(3/2) = 1 unchanged
    assert searcher.on_validation_completed(2, 0.6, 2) == []  # rung 1: n = 0; budget spent
    # Trial 1 waits at rung 0 (ranked 0.3) and is cancelled while paused: nothing recorded yet.
    assert searcher.on_trial_exited_early(1, ExitedReason.USER_CANCELED) == []
    assert searcher.on_trial_closed(1) == []
    # Trial 4 (0.5), n = 3: floor(4/2) = 2 > 1, place 3; the trial at place 1 is trial 1: promoted, but it
    # cannot train, so it is recorded at rung 1 at once as the worst. Rung 1: n = 1, floor(2/2) = 1 > 0,
    # place 1, so trial 2 at place 0 is promoted to the top. Then rung 0 is full: close 3 and 4; rung 1
    # has nobody training towards it (trial 1 exited, not closed by us); rung 2 has trial 2: stop.
    assert searcher.on_validation_completed(4, 0.5, 1) == [ValidateAfter(2, 4), Close(3), Close(4)]
    assert searcher.placements()[1] == TrialPlacement(0, 1, "closed")
    assert searcher.on_validation_completed(2, 0.1, 4) == [Close(2)]
    closing = [searcher.on_trial_closed(request_id) for request_id in (3, 4, 2)]
    assert closing == [[], [], [Shutdown(failure=False, cancel=False)]]


def test_invalid_hyperparameters_are_replaced_and_not_counted() -> None:
    searcher = make(**SMALL)
    searcher.initial_operations()
    # Trial 1 is invalid: replaced at once (trial 3); it does not count towards the 4 trials.
    assert without_hparams(searcher.on_trial_exited_early(1, ExitedReason.INVALID_HP)) == [
        ("Create", 3), ValidateAfter(3, 1)]
    searcher.on_trial_closed(1)
    creates, metric = [], 0.0
    pending = deque([2, 3])
    while pending:
        request_id = pending.popleft()
        metric += 1.0  # every trial worse than the last: exactly floor(n/2) promotions per rung
        length = searcher.placements()[request_id].rung
        operations = searcher.on_validation_completed(request_id, metric, (1, 2, 4)[length])
        creates += created(operations)
        pending.extend(op.request_id for op in operations if isinstance(op, ValidateAfter))
    # Trials 2-5 fill the budget of 4 (3 was the replacement, 4 and 5 new): 5 created, 1 invalid.
    assert creates == [4, 5]
    assert searcher.created == [1, 2, 3, 4, 5]
    assert searcher.progress() == 0.99  # 4 bottom-rung results of 4 planned, capped before shutdown


def test_an_invalid_promoted_trial_loses_its_results_on_every_rung() -> None:
    searcher = make(**SMALL)
    searcher.initial_operations()
    searcher.on_validation_completed(1, 0.1, 1)  # creates trial 3
    assert searcher.on_validation_completed(2, 0.5, 1) == [ValidateAfter(1, 2)]
    # Trial 1 turns out invalid on its way to rung 1: its rung-0 result is removed (rung 0: [2]) and a
    # replacement starts; progress counts 1 bottom-rung result of 4.
    assert created(searcher.on_trial_exited_early(1, ExitedReason.INVALID_HP)) == [4]
    assert searcher.progress() == 0.25
    # Trial 3 (0.3) with n = 1 (only trial 2's 0.5): place 0 < floor(2/2) = 1, promoted.
    assert searcher.on_validation_completed(3, 0.3, 1) == [ValidateAfter(3, 2)]


def test_a_report_short_of_the_rung_length_or_from_a_waiting_trial_is_ignored() -> None:
    searcher = make(**SMALL)
    searcher.initial_operations()
    assert searcher.on_validation_completed(1, 0.5, 0) == []
    assert created(searcher.on_validation_completed(1, 0.5, 1)) == [3]
    assert searcher.on_validation_completed(1, 0.1, 1) == []


def test_events_for_unknown_trials_are_errors() -> None:
    searcher = make(**SMALL)
    searcher.initial_operations()
    with pytest.raises(SearcherError, match="request id 9"):
        searcher.on_validation_completed(9, 0.5, 1)


# --- stopping-based (stop_once: true) --------------------------------------------------------------


def test_stop_once_continues_the_top_share_with_ties_ahead() -> None:
    searcher = make(stop_once=True, **SMALL)
    assert created(searcher.initial_operations()) == [1, 2]
    # rung 0: [0.5]; place 0 < max(floor(1/2), 1) = 1: continue.
    assert searcher.on_validation_completed(1, 0.5, 1) == [ValidateAfter(1, 2)]
    # 0.5 ties trial 1 and goes ahead of it: place 0 < max(floor(2/2), 1) = 1: continue.
    assert searcher.on_validation_completed(2, 0.5, 1) == [ValidateAfter(2, 2)]
    assert searcher.on_validation_completed(1, 0.7, 2) == [ValidateAfter(1, 4)]  # rung 1: [0.7], place 0
    # rung 1: [0.7, 0.9]: place 1, not < 1: closed, and a new trial takes its place.
    assert without_hparams(searcher.on_validation_completed(2, 0.9, 2)) == [
        Close(2), ("Create", 3), ValidateAfter(3, 1)]
    # rung 0: [0.5, 0.5, 0.8]: place 2, not < max(floor(3/2), 1) = 1.
    assert without_hparams(searcher.on_validation_completed(3, 0.8, 1)) == [
        Close(3), ("Create", 4), ValidateAfter(4, 1)]
    assert searcher.on_validation_completed(1, 0.6, 4) == [Close(1)]  # top rung; budget of 4 spent
    assert searcher.on_validation_completed(4, 0.1, 1) == [ValidateAfter(4, 2)]  # place 0 < floor(4/2) = 2
    assert searcher.on_validation_completed(4, 0.95, 2) == [Close(4)]  # rung 1: place 2, not < 1
    assert [searcher.on_trial_closed(rid) for rid in (2, 3, 1, 4)] == [[], [], [], [Shutdown()]]


def test_stop_once_early_exit_is_the_worst_and_makes_room() -> None:
    searcher = make(stop_once=True, **SMALL)
    searcher.initial_operations()
    assert created(searcher.on_trial_exited_early(1, ExitedReason.ERRORED)) == [3]
    # rung 0: [0.5, worst]: place 0 < max(floor(2/2), 1) = 1: continue.
    assert searcher.on_validation_completed(2, 0.5, 1) == [ValidateAfter(2, 2)]


# --- outcome and progress --------------------------------------------------------------------------

ONE_RUNG = dict(max_length=1, max_trials=2, max_concurrent_trials=2)  # R = min(5, log 1 + 1 = 1, ...) = 1


@pytest.mark.parametrize(("reasons", "expected"), [
    (["ERRORED", "ERRORED"], Shutdown(failure=True, cancel=False)),
    (["USER_CANCELED", "USER_CANCELED"], Shutdown(failure=False, cancel=True)),
    (["ERRORED", "USER_CANCELED"], Shutdown(failure=False, cancel=False)),
    (["USER_REQUESTED_STOP", "USER_REQUESTED_STOP"], Shutdown(failure=False, cancel=False)),
])
def test_outcome_rule(reasons, expected) -> None:
    searcher = make(**ONE_RUNG)
    assert created(searcher.initial_operations()) == [1, 2]
    operations = []
    for request_id, reason in zip((1, 2), reasons):
        operations += searcher.on_trial_exited_early(request_id, reason)
        operations += searcher.on_trial_closed(request_id)
    assert operations == [expected]


def test_invalid_hyperparameters_are_not_a_failure() -> None:
    searcher = make(max_length=1, max_trials=1)
    searcher.initial_operations()
    assert created(searcher.on_trial_exited_early(1, "INVALID_HP")) == [2]
    assert searcher.on_trial_closed(1) == []
    assert searcher.on_trial_exited_early(2, "ERRORED") == []
    assert searcher.on_trial_closed(2) == [Shutdown(failure=False, cancel=False)]


def test_progress_counts_bottom_rung_results_and_reaches_one_only_at_shutdown() -> None:
    searcher = make(**ONE_RUNG)
    searcher.initial_operations()
    assert searcher.progress() == 0.0
    assert searcher.on_validation_completed(1, 0.5, 1) == [Close(1)]
    assert searcher.progress() == 0.5  # 1 of 2 planned
    searcher.on_trial_exited_early(2, "ERRORED")
    assert searcher.progress() == 0.99  # 2 of 2, an early exit counted as done, capped before shutdown
    searcher.on_trial_closed(1)
    assert searcher.on_trial_closed(2) == [Shutdown()]
    assert searcher.progress() == 1.0


# --- properties --------------------------------------------------------------------------------------

configs = st.fixed_dictionaries({
    "mode": st.sampled_from(["aggressive", "standard", "conservative"]),
    "max_length": st.integers(1, 64),
    "divisor": st.sampled_from([2.0, 2.5, 3.0, 4.0]),
    "max_trials": st.integers(1, 24),
    "max_concurrent_trials": st.integers(0, 6),
    "stop_once": st.booleans(),
    "smaller_is_better": st.booleans(),
})


class RandomController:
    """Carries out operations like the controller, with random metrics, order and early exits."""

    def __init__(self, searcher: SearchMethod, seed: int) -> None:
        self.searcher = searcher
        self.random = random.Random(seed)
        self.outstanding: dict[int, int] = {}
        self.lengths: dict[int, int] = {}
        self.open: set[int] = set()
        self.closed: set[int] = set()
        self.shutdowns = 0
        self.most_in_flight = 0
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def carry_out(self, operations: list[Operation]) -> None:
        queue = deque(operations)
        while queue:
            operation = queue.popleft()
            assert self.shutdowns == 0, f"{operation} after Shutdown"
            if isinstance(operation, Create):
                self.open.add(operation.request_id)
                queue.extend(self.call("on_trial_created", operation.request_id))
            elif isinstance(operation, ValidateAfter):
                assert operation.request_id in self.open and operation.request_id not in self.outstanding
                assert self.lengths.get(operation.request_id, 0) <= operation.length <= self.searcher.max_length
                self.outstanding[operation.request_id] = operation.length
                self.lengths[operation.request_id] = operation.length
            elif isinstance(operation, Close):
                assert operation.request_id in self.open and operation.request_id not in self.outstanding
                queue.extend(self.close(operation.request_id))
            else:
                self.shutdowns += 1
            self.most_in_flight = max(self.most_in_flight, len(self.outstanding))

    def close(self, request_id: int) -> list[Operation]:
        self.open.remove(request_id)
        self.closed.add(request_id)
        return self.call("on_trial_closed", request_id)

    def call(self, event: str, *arguments: Any) -> list[Operation]:
        self.events.append((event, arguments))
        return getattr(self.searcher, event)(*arguments)

    def exit(self, request_id: int, reason: str) -> None:
        """An early exit, then (as the controller does) the trial's closing."""
        self.carry_out(self.call("on_trial_exited_early", request_id, reason))
        self.carry_out(self.close(request_id))

    def step(self) -> None:
        waiting = sorted(self.open - set(self.outstanding))
        if waiting and self.random.random() < 0.05:
            request_id = self.random.choice(waiting)
            reason = self.random.choice(["ERRORED", "USER_CANCELED", "USER_REQUESTED_STOP"])
            self.exit(request_id, reason)
            return
        request_id = self.random.choice(sorted(self.outstanding))
        length = self.outstanding.pop(request_id)
        if self.random.random() < 0.15:
            self.exit(request_id, self.random.choice(list(ExitedReason)).value)
        else:
            metric = float(self.random.choice([0.0, 0.25, 0.5, 1.0, self.random.random()]))
            self.carry_out(self.call("on_validation_completed", request_id, {"loss": metric}, length))

    def run(self) -> None:
        self.carry_out(self.call("initial_operations"))
        while self.outstanding:
            self.step()
            assert 0.0 <= self.searcher.progress() <= (1.0 if self.shutdowns else 0.99)


@settings(max_examples=60, deadline=None)
@given(config=configs, seed=st.integers(0, 2**16))
def test_any_run_stays_in_bounds_closes_every_trial_and_shuts_down_once(config, seed) -> None:
    searcher = make(seed=seed, **config)
    controller = RandomController(searcher, seed)
    controller.run()
    limit = sum(bracket.max_concurrent_trials for bracket in searcher.brackets())
    if config["max_concurrent_trials"]:
        assert limit == max(config["max_concurrent_trials"], len(searcher.brackets()))
    assert controller.most_in_flight <= limit
    assert controller.shutdowns == 1 and not controller.open and controller.closed == set(searcher.created)
    assert searcher.progress() == 1.0


@settings(max_examples=40, deadline=None)
@given(config=configs, seed=st.integers(0, 2**16), cut=st.floats(0, 1))
def test_state_round_trip_through_json_reproduces_the_same_operations(config, seed, cut) -> None:
    controller = RandomController(make(seed=seed, **config), seed)
    controller.run()
    events = controller.events
    replay = make(seed=seed, **config)
    point = int(cut * len(events))
    for event, arguments in events[:point]:
        getattr(replay, event)(*arguments)
    restored = make(seed=seed + 1, **config)
    restored.load_state_dict(json.loads(json.dumps(replay.state_dict())))
    for event, arguments in events[point:]:
        assert getattr(restored, event)(*arguments) == getattr(replay, event)(*arguments)
    assert restored.state_dict() == replay.state_dict()
