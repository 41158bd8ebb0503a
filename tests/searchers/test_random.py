"""Random search: max_trials random configurations, each trained to max_length, max_concurrent_trials at a time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpt_core import create_searcher
from hpt_core.errors import SearcherError
from hpt_core.searchers import Close, Create, ExitedReason, SearchMethod, Shutdown, ValidateAfter
from hpt_core.testing import drive, random_exits

SPACE = {
    "lr": {"type": "log", "minval": -4, "maxval": -1},
    "layers": {"type": "int", "minval": 1, "maxval": 4},
    "act": {"type": "categorical", "vals": ["relu", "tanh"]},
    "optimizer": {"momentum": {"type": "double", "minval": 0.0, "maxval": 0.9}, "name": "sgd"},
}


def random_search(seed: int = 0, **searcher: Any) -> SearchMethod:
    fields = {"name": "random", "metric": "loss", "max_length": 10, "max_trials": 4, **searcher}
    return create_searcher({"searcher": fields, "hyperparameters": SPACE}, seed=seed)


def created(operations: list) -> list[int]:
    return [operation.request_id for operation in operations if isinstance(operation, Create)]


def most_open_at_once(run) -> int:
    """The largest number of trials created and not yet closed at any moment of a run."""
    open_trials, most = 0, 0
    for step in run.steps:
        if step.event.name == "on_trial_closed":
            open_trials -= 1
        open_trials += len(created(step.operations))
        most = max(most, open_trials)
    return most


@pytest.mark.parametrize(("max_trials", "max_concurrent_trials", "expected"), [
    (4, 2, 2),   # min(4, 2)
    (4, 16, 4),  # min(4, 16)
    (5, 0, 5),   # 0: every trial at once
    (1, 3, 1),   # min(1, 3)
])
def test_initial_operations_create_min_of_max_trials_and_concurrency(
    max_trials: int, max_concurrent_trials: int, expected: int
) -> None:
    searcher = random_search(max_trials=max_trials, max_concurrent_trials=max_concurrent_trials)
    operations = searcher.initial_operations()
    assert created(operations) == list(range(1, expected + 1))


def test_every_trial_trains_to_max_length_with_random_hparams_from_the_space() -> None:
    searcher = random_search(max_length={"epochs": 7}, max_trials=3)
    operations = searcher.initial_operations()
    # Create(1), ValidateAfter(1, 7), Create(2), ValidateAfter(2, 7), ...
    assert [type(operation) for operation in operations] == [Create, ValidateAfter] * 3
    assert [operation.length for operation in operations[1::2]] == [7, 7, 7]
    assert all(searcher.space.contains(operation.hparams) for operation in operations[::2])
    assert all(operation.checkpoint is None for operation in operations[::2])
    assert operations[0].hparams != operations[2].hparams


def test_a_trial_that_reaches_max_length_is_closed_and_makes_room_for_the_next() -> None:
    searcher = random_search(max_trials=3, max_concurrent_trials=2)
    searcher.initial_operations()  # trials 1 and 2
    assert searcher.on_validation_completed(1, {"loss": 0.3}, 10) == [Close(1)]
    operations = searcher.on_trial_closed(1)
    assert [type(operation) for operation in operations] == [Create, ValidateAfter]
    assert operations[0].request_id == 3 and operations[1] == ValidateAfter(3, 10)


def test_a_validation_short_of_max_length_does_not_close() -> None:
    searcher = random_search()
    searcher.initial_operations()
    assert searcher.on_validation_completed(1, {"loss": 0.3}, 4) == []


def test_search_shuts_down_once_max_trials_have_closed() -> None:
    searcher = random_search(max_trials=2, max_concurrent_trials=1)
    searcher.initial_operations()
    searcher.on_validation_completed(1, {"loss": 1.0}, 10)
    assert created(searcher.on_trial_closed(1)) == [2]
    searcher.on_validation_completed(2, {"loss": 2.0}, 10)
    assert searcher.on_trial_closed(2) == [Shutdown(failure=False, cancel=False)]


def test_an_invalid_hp_trial_is_replaced_and_does_not_count() -> None:
    searcher = random_search(max_trials=2, max_concurrent_trials=0)
    searcher.initial_operations()  # trials 1 and 2
    searcher.on_trial_exited_early(1, ExitedReason.INVALID_HP)
    assert created(searcher.on_trial_closed(1)) == [3]
    # Trials 2 and 3 are the two that count: closing both ends the search.
    for request_id in (2, 3):
        assert searcher.on_validation_completed(request_id, {"loss": 0.5}, 10) == [Close(request_id)]
    assert searcher.on_trial_closed(2) == []
    assert searcher.on_trial_closed(3) == [Shutdown(failure=False, cancel=False)]


def test_an_errored_trial_counts_and_is_not_replaced() -> None:
    searcher = random_search(max_trials=2, max_concurrent_trials=0)
    searcher.initial_operations()
    searcher.on_trial_exited_early(1, "ERRORED")
    assert searcher.on_trial_closed(1) == []
    searcher.on_validation_completed(2, {"loss": 0.5}, 10)
    assert searcher.on_trial_closed(2) == [Shutdown(failure=False, cancel=False)]


@pytest.mark.parametrize(("reasons", "expected"), [
    (["ERRORED", "ERRORED"], Shutdown(failure=True, cancel=False)),
    (["USER_CANCELED", "USER_CANCELED"], Shutdown(failure=False, cancel=True)),
    (["ERRORED", None], Shutdown(failure=False, cancel=False)),
    (["USER_REQUESTED_STOP", "USER_REQUESTED_STOP"], Shutdown(failure=False, cancel=False)),
    (["ERRORED", "USER_CANCELED"], Shutdown(failure=False, cancel=False)),
])
def test_outcome_is_failure_only_if_every_trial_errored_and_cancel_only_if_every_trial_was_cancelled(
    reasons: list[str | None], expected: Shutdown
) -> None:
    searcher = random_search(max_trials=2, max_concurrent_trials=0)
    searcher.initial_operations()
    operations = []
    for request_id, reason in enumerate(reasons, start=1):
        if reason is None:
            searcher.on_validation_completed(request_id, {"loss": 0.5}, 10)
        else:
            searcher.on_trial_exited_early(request_id, reason)
        operations += searcher.on_trial_closed(request_id)
    assert operations == [expected]


def test_invalid_hp_trials_are_not_failures() -> None:
    # max_trials 1: trial 1 INVALID_HP (replaced by 2), trial 2 ERRORED. Not every trial errored.
    searcher = random_search(max_trials=1)
    searcher.initial_operations()
    searcher.on_trial_exited_early(1, ExitedReason.INVALID_HP)
    assert created(searcher.on_trial_closed(1)) == [2]
    searcher.on_trial_exited_early(2, ExitedReason.ERRORED)
    assert searcher.on_trial_closed(2) == [Shutdown(failure=False, cancel=False)]


def test_progress_is_the_mean_completion_over_max_trials() -> None:
    searcher = random_search(max_trials=4, max_length=10, max_concurrent_trials=0)
    searcher.initial_operations()
    assert searcher.progress() == 0.0
    searcher.on_validation_completed(1, {"loss": 0.1}, 5)
    assert searcher.progress() == pytest.approx(0.5 / 4)  # trial 1 is half way
    searcher.on_validation_completed(2, {"loss": 0.1}, 10)
    assert searcher.progress() == pytest.approx(1.5 / 4)  # + trial 2 done
    searcher.on_trial_exited_early(3, "ERRORED")
    assert searcher.progress() == pytest.approx(2.5 / 4)  # + trial 3 exited counts as done
    searcher.on_trial_exited_early(4, "INVALID_HP")
    assert searcher.progress() == pytest.approx(2.5 / 4)  # trial 4 does not count (it will be replaced)


def test_progress_is_one_after_shutdown() -> None:
    run = drive(random_search(max_trials=3))
    assert run.shutdowns == [Shutdown()]
    assert run.steps[-1].progress == 1.0


def test_a_missing_searcher_metric_names_the_metric_and_what_was_reported() -> None:
    searcher = random_search()
    searcher.initial_operations()
    with pytest.raises(SearcherError, match=r"'loss' was not reported; reported metrics: accuracy, val_loss"):
        searcher.on_validation_completed(1, {"val_loss": 0.3, "accuracy": 0.9}, 10)


def test_a_non_numeric_searcher_metric_is_an_error() -> None:
    searcher = random_search()
    searcher.initial_operations()
    with pytest.raises(SearcherError, match=r"'loss' must be a number, got 'low'"):
        searcher.on_validation_completed(1, {"loss": "low"}, 10)


def test_state_round_trip_mid_search_gives_the_same_operations() -> None:
    searcher = random_search(max_trials=4, max_concurrent_trials=2)
    searcher.initial_operations()
    searcher.on_validation_completed(1, {"loss": 0.2}, 10)
    restored = random_search(seed=99, max_trials=4, max_concurrent_trials=2)
    restored.load_state_dict(json.loads(json.dumps(searcher.state_dict())))
    assert restored.on_trial_closed(1) == searcher.on_trial_closed(1)
    assert restored.progress() == searcher.progress()


def test_same_seed_same_hparams_and_another_seed_other_hparams() -> None:
    first, again, other = (random_search(seed).initial_operations() for seed in (1, 1, 2))
    assert first == again
    assert first != other


@settings(max_examples=50, deadline=None)
@given(
    max_trials=st.integers(1, 8),
    max_concurrent_trials=st.integers(0, 4),
    exit_probability=st.sampled_from([0.0, 0.2, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_exactly_max_trials_count_and_concurrency_is_respected(
    max_trials: int, max_concurrent_trials: int, exit_probability: float, seed: int
) -> None:
    searcher = random_search(seed, max_trials=max_trials, max_concurrent_trials=max_concurrent_trials)
    run = drive(searcher, exit_fn=random_exits(exit_probability, seed), rng=seed)
    invalid = [trial for trial in run.trials.values() if trial.exit_reason is ExitedReason.INVALID_HP]
    assert len(run.trials) - len(invalid) == max_trials
    assert most_open_at_once(run) <= (max_concurrent_trials or max_trials)
    assert all(trial.closed for trial in run.trials.values())
    assert len(run.shutdowns) == 1
    completed = [trial for trial in run.trials.values() if trial.exit_reason is None]
    assert all(trial.reported_lengths == [10] for trial in completed)
