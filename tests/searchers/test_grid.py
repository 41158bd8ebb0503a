"""Grid search: one trial per grid point, in order, at most max_concurrent_trials at a time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpt_core import ConfigError, create_searcher
from hpt_core.searchers import Close, Create, ExitedReason, SearchMethod, Shutdown, ValidateAfter
from hpt_core.testing import drive, random_exits

# Axes in visiting order (sorted names, a nested group one axis per leaf): a, b, opt.c, opt.m.
SPACE = {
    "b": {"type": "categorical", "vals": ["x", "y"]},
    "a": {"type": "int", "minval": 1, "maxval": 3, "count": 3},
    "opt": {"m": {"type": "double", "minval": 0.0, "maxval": 1.0, "count": 2}, "c": 5},
}


def point(a: int, b: str, m: float) -> dict[str, Any]:
    return {"a": a, "b": b, "opt": {"c": 5, "m": m}}


# Row-major with the first name slowest: a in 1, 2, 3 (linspace(1, 3, 3)); b in x, y; opt.c is 5;
# opt.m in 0.0, 1.0 (linspace(0, 1, 2)). 3 * 2 * 1 * 2 = 12 points.
GRID = [point(a, b, m) for a in (1, 2, 3) for b in ("x", "y") for m in (0.0, 1.0)]


def grid_search(seed: int = 0, space: dict[str, Any] = SPACE, **searcher: Any) -> SearchMethod:
    fields = {"name": "grid", "metric": "loss", "max_length": 4, "max_concurrent_trials": 0, **searcher}
    return create_searcher({"searcher": fields, "hyperparameters": space}, seed=seed)


def creates(operations: list) -> list[Create]:
    return [operation for operation in operations if isinstance(operation, Create)]


def test_one_trial_per_grid_point_in_row_major_order_over_sorted_names() -> None:
    operations = grid_search().initial_operations()
    assert [create.hparams for create in creates(operations)] == GRID
    assert [create.request_id for create in creates(operations)] == list(range(1, 13))


def test_every_trial_trains_to_max_length() -> None:
    operations = grid_search(max_length={"epochs": 9}).initial_operations()
    validations = [operation for operation in operations if isinstance(operation, ValidateAfter)]
    assert validations == [ValidateAfter(request_id, 9) for request_id in range(1, 13)]


def test_at_most_max_concurrent_trials_at_a_time_then_the_next_point_on_each_close() -> None:
    searcher = grid_search(max_concurrent_trials=5)
    assert [create.hparams for create in creates(searcher.initial_operations())] == GRID[:5]
    assert searcher.on_validation_completed(3, {"loss": 1.0}, 4) == [Close(3)]
    assert creates(searcher.on_trial_closed(3)) == [Create(6, GRID[5])]


@pytest.mark.parametrize("reason", [ExitedReason.ERRORED, ExitedReason.INVALID_HP])
def test_an_errored_or_invalid_point_is_used_up_never_retried(reason: ExitedReason) -> None:
    searcher = grid_search(max_concurrent_trials=1)
    searcher.initial_operations()  # point 0
    searcher.on_trial_exited_early(1, reason)
    assert creates(searcher.on_trial_closed(1)) == [Create(2, GRID[1])]


def test_the_search_shuts_down_after_the_last_point_closes() -> None:
    space = {"act": {"type": "categorical", "vals": ["relu", "tanh"]}}
    searcher = grid_search(space=space)
    assert len(creates(searcher.initial_operations())) == 2
    searcher.on_trial_exited_early(1, "INVALID_HP")
    assert searcher.on_trial_closed(1) == []
    searcher.on_validation_completed(2, {"loss": 0.3}, 4)
    assert searcher.on_trial_closed(2) == [Shutdown(failure=False, cancel=False)]


def test_outcome_is_failure_when_every_point_errored() -> None:
    searcher = grid_search(space={"act": {"type": "categorical", "vals": ["relu", "tanh"]}})
    searcher.initial_operations()
    operations = []
    for request_id in (1, 2):
        searcher.on_trial_exited_early(request_id, "ERRORED")
        operations += searcher.on_trial_closed(request_id)
    assert operations == [Shutdown(failure=True, cancel=False)]


def test_a_space_of_constants_is_one_point() -> None:
    operations = grid_search(space={"lr": 0.1, "name": "sgd"}).initial_operations()
    assert operations == [Create(1, {"lr": 0.1, "name": "sgd"}), ValidateAfter(1, 4)]


def test_progress_is_the_mean_completion_over_all_points() -> None:
    searcher = grid_search(max_concurrent_trials=2)  # 12 points, 2 created so far
    searcher.initial_operations()
    searcher.on_validation_completed(1, {"loss": 0.1}, 2)
    assert searcher.progress() == pytest.approx(0.5 / 12)  # trial 1 at 2 of 4
    searcher.on_trial_exited_early(2, "ERRORED")
    assert searcher.progress() == pytest.approx(1.5 / 12)  # trial 2 ended counts as 1


def test_grid_needs_count_on_numeric_hyperparameters() -> None:
    space = {"lr": {"type": "log", "minval": -4, "maxval": -1}, "n": {"m": {"type": "int", "minval": 1, "maxval": 3}}}
    with pytest.raises(ConfigError) as raised:
        grid_search(space=space)
    assert raised.value.paths == ["hyperparameters.lr.count", "hyperparameters.n.m.count"]


def test_a_grid_of_more_than_100_000_points_is_refused_with_its_counts_before_any_point_is_made() -> None:
    space = {"a": {"type": "int", "minval": 0, "maxval": 10**6, "count": 10**6},
             "b": {"type": "double", "minval": 0.0, "maxval": 1.0, "count": 10**12}, "c": 5}
    with pytest.raises(ConfigError) as raised:
        grid_search(space=space)
    assert raised.value.paths == ["hyperparameters"]
    assert "1,000,000,000,000,000,000 trials (a: 1,000,000, b: 1,000,000,000,000); at most 100,000" \
        in str(raised.value)
    exactly = {"a": {"type": "int", "minval": 1, "maxval": 1000, "count": 10**9},
               "b": {"type": "categorical", "vals": list(range(100))}}
    assert grid_search(space=exactly).trial_budget == 100_000  # an int's count stops at the integers in its range


def test_state_round_trip_continues_with_the_next_point() -> None:
    searcher = grid_search(max_concurrent_trials=2)
    searcher.initial_operations()
    searcher.on_validation_completed(2, {"loss": 0.1}, 4)
    restored = grid_search(seed=3, max_concurrent_trials=2)
    restored.load_state_dict(json.loads(json.dumps(searcher.state_dict())))
    assert creates(restored.on_trial_closed(2)) == [Create(3, GRID[2])]


@settings(max_examples=50, deadline=None)
@given(max_concurrent_trials=st.integers(0, 13), exit_probability=st.sampled_from([0.0, 0.3]),
       seed=st.integers(0, 2**16))
def test_every_point_is_tried_exactly_once_in_order(max_concurrent_trials: int, exit_probability: float,
                                                   seed: int) -> None:
    run = drive(grid_search(max_concurrent_trials=max_concurrent_trials),
                exit_fn=random_exits(exit_probability, seed), rng=seed)
    assert [trial.hparams for trial in run.trials.values()] == GRID
    assert len(run.shutdowns) == 1
