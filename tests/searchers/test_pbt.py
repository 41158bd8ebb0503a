"""Population-based training: rounds of training, truncation of the worst, perturbed children of the best."""

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
    "lr": {"type": "double", "minval": 0.001, "maxval": 1.0},
    "layers": {"type": "int", "minval": 1, "maxval": 16},
    "act": {"type": "categorical", "vals": ["relu", "tanh"]},
    "name": "sgd",
}


def pbt(seed: int = 0, **searcher: Any) -> SearchMethod:
    fields = {"name": "pbt", "metric": "loss", "population_size": 4, "num_rounds": 3, "length_per_round": 5,
              **searcher}
    return create_searcher({"searcher": fields, "hyperparameters": SPACE}, seed=seed)


def of_type(operations: list, kind: type) -> list:
    return [operation for operation in operations if isinstance(operation, kind)]


def report_round(searcher: SearchMethod, losses: dict[int, float | str], length: int) -> list:
    """Every listed member reports `length` with its loss, or exits early with the given reason."""
    operations = []
    for request_id, loss in losses.items():
        if isinstance(loss, str):
            operations += searcher.on_trial_exited_early(request_id, loss)
        else:
            operations += searcher.on_validation_completed(request_id, {"loss": loss}, length)
    return operations


def test_the_population_starts_with_random_trials_each_asked_for_one_round() -> None:
    searcher = pbt()
    operations = searcher.initial_operations()
    assert [create.request_id for create in of_type(operations, Create)] == [1, 2, 3, 4]
    assert all(create.checkpoint is None and searcher.space.contains(create.hparams)
               for create in of_type(operations, Create))
    assert of_type(operations, ValidateAfter) == [ValidateAfter(request_id, 5) for request_id in (1, 2, 3, 4)]


def test_nothing_happens_until_every_member_has_reported() -> None:
    searcher = pbt()
    searcher.initial_operations()
    assert report_round(searcher, {1: 0.4, 2: 0.1, 3: 0.3}, 5) == []


def test_the_worst_are_closed_and_the_best_cloned_from_their_checkpoints() -> None:
    searcher = pbt()
    parents = {create.request_id: create.hparams for create in of_type(searcher.initial_operations(), Create)}
    operations = report_round(searcher, {1: 0.4, 2: 0.1, 3: 0.3, 4: 0.2}, 5)
    # Ranking 2 (0.1), 4 (0.2), 3 (0.3), 1 (0.4); k = floor(0.5 * 4) = 2.
    assert of_type(operations, Close) == [Close(3), Close(1)]
    children = of_type(operations, Create)
    assert [(child.request_id, child.checkpoint) for child in children] == [(5, 2), (6, 4)]
    assert all(searcher.space.contains(child.hparams) for child in children)
    assert [child.hparams["name"] for child in children] == ["sgd", "sgd"]
    assert any(child.hparams != parents[child.checkpoint] for child in children)
    # Children count their own length from 0; survivors 2 and 4 go on to 2 rounds * 5.
    assert set(of_type(operations, ValidateAfter)) == {ValidateAfter(5, 5), ValidateAfter(6, 5),
                                                       ValidateAfter(2, 10), ValidateAfter(4, 10)}


def test_ties_are_ranked_by_request_id() -> None:
    searcher = pbt()
    searcher.initial_operations()
    operations = report_round(searcher, {4: 0.5, 3: 0.5, 2: 0.5, 1: 0.5}, 5)
    # Ranking 1, 2, 3, 4: close 3 and 4, clone 1 and 2.
    assert sorted(close.request_id for close in of_type(operations, Close)) == [3, 4]
    assert [create.checkpoint for create in of_type(operations, Create)] == [1, 2]


def test_larger_is_better_when_smaller_is_better_is_false() -> None:
    searcher = pbt(smaller_is_better=False)
    searcher.initial_operations()
    operations = report_round(searcher, {1: 0.4, 2: 0.1, 3: 0.3, 4: 0.2}, 5)
    # Ranking 1 (0.4), 3 (0.3), 4 (0.2), 2 (0.1).
    assert sorted(close.request_id for close in of_type(operations, Close)) == [2, 4]
    assert [create.checkpoint for create in of_type(operations, Create)] == [1, 3]


@pytest.mark.parametrize(("population_size", "truncate_fraction", "truncated"), [
    (5, 0.5, 2),   # floor(2.5)
    (3, 0.4, 1),   # floor(1.2)
    (4, 0.2, 0),   # floor(0.8): nobody is replaced
    (10, 0.3, 3),  # floor(3.0)
])
def test_floor_of_truncate_fraction_times_population_is_replaced(
    population_size: int, truncate_fraction: float, truncated: int
) -> None:
    searcher = pbt(population_size=population_size, replace_function={"truncate_fraction": truncate_fraction})
    searcher.initial_operations()
    operations = report_round(searcher, {i: float(i) for i in range(1, population_size + 1)}, 5)
    assert len(of_type(operations, Close)) == truncated
    assert len(of_type(operations, Create)) == truncated
    assert len(of_type(operations, ValidateAfter)) == population_size


def test_children_are_perturbed_by_the_perturb_factor_within_range() -> None:
    searcher = pbt(population_size=2, explore_function={"resample_probability": 0.0, "perturb_factor": 0.5})
    parents = {create.request_id: create.hparams for create in of_type(searcher.initial_operations(), Create)}
    child = of_type(report_round(searcher, {1: 0.1, 2: 0.9}, 5), Create)[0]
    parent = parents[1]
    # Without resampling, lr is parent * 0.5 or * 1.5 (clamped to [0.001, 1.0]); layers floor(x * 0.5) or
    # ceil(x * 1.5) (clamped to [1, 16]); a categorical keeps its value.
    assert child.hparams["lr"] in [pytest.approx(min(max(parent["lr"] * factor, 0.001), 1.0)) for factor in (0.5, 1.5)]
    assert child.hparams["layers"] in {max(parent["layers"] // 2, 1), min(-(-parent["layers"] * 3 // 2), 16)}
    assert child.hparams["act"] == parent["act"]


def test_survivors_are_asked_for_one_more_round_each_round() -> None:
    searcher = pbt(num_rounds=4)
    searcher.initial_operations()
    report_round(searcher, {1: 0.4, 2: 0.1, 3: 0.3, 4: 0.2}, 5)  # population now 2, 4, 5, 6
    # Children 5 and 6 finish their first round at 5; a report of 2 or 4 at 5 is short of their 10.
    assert report_round(searcher, {2: 0.1, 4: 0.2, 5: 0.3, 6: 0.4}, 5) == []
    operations = report_round(searcher, {2: 0.1, 4: 0.2}, 10)
    # Ranking 2, 4, 5, 6: close 5, 6; children 7 (of 2) and 8 (of 4); 2 and 4 go to 15.
    assert sorted(close.request_id for close in of_type(operations, Close)) == [5, 6]
    assert [(create.request_id, create.checkpoint) for create in of_type(operations, Create)] == [(7, 2), (8, 4)]
    assert set(of_type(operations, ValidateAfter)) == {ValidateAfter(7, 5), ValidateAfter(8, 5),
                                                       ValidateAfter(2, 15), ValidateAfter(4, 15)}


def test_a_report_short_of_the_rounds_length_does_not_count() -> None:
    searcher = pbt(population_size=2)
    searcher.initial_operations()
    assert report_round(searcher, {1: 0.1, 2: 0.2}, 3) == []
    assert of_type(report_round(searcher, {1: 0.1, 2: 0.2}, 5), Create) != []


def test_after_the_last_round_everyone_is_closed_then_the_search_shuts_down() -> None:
    searcher = pbt(num_rounds=1)
    searcher.initial_operations()
    operations = report_round(searcher, {1: 0.4, 2: 0.1, 3: 0.3, 4: 0.2}, 5)
    assert sorted(operations, key=lambda close: close.request_id) == [Close(1), Close(2), Close(3), Close(4)]
    assert [searcher.on_trial_closed(request_id) for request_id in (1, 2, 3)] == [[], [], []]
    assert searcher.on_trial_closed(4) == [Shutdown(failure=False, cancel=False)]
    assert searcher.progress() == 1.0


def test_progress_is_rounds_done_over_num_rounds() -> None:
    searcher = pbt(num_rounds=3)
    searcher.initial_operations()
    assert searcher.progress() == 0.0
    report_round(searcher, {1: 0.4, 2: 0.1, 3: 0.3, 4: 0.2}, 5)
    assert searcher.progress() == pytest.approx(1 / 3)


def test_an_errored_member_counts_as_worst_and_is_never_cloned() -> None:
    searcher = pbt()
    searcher.initial_operations()
    # Member 2 would have been best, but it errored: ranking 4 (0.2), 3 (0.3), 1 (0.4), then 2.
    operations = report_round(searcher, {1: 0.4, 2: "ERRORED", 3: 0.3, 4: 0.2}, 5)
    assert of_type(operations, Close) == [Close(1)]  # 2 is among the worst two but has already ended
    assert [create.checkpoint for create in of_type(operations, Create)] == [4, 3]
    assert set(of_type(operations, ValidateAfter)) >= {ValidateAfter(4, 10), ValidateAfter(3, 10)}


def test_an_early_exit_can_complete_the_round() -> None:
    searcher = pbt(population_size=2)
    searcher.initial_operations()
    searcher.on_validation_completed(1, {"loss": 0.3}, 5)
    operations = searcher.on_trial_exited_early(2, ExitedReason.USER_CANCELED)
    # Ranking 1, then 2 (exited): k = 1, so 2's slot goes to a child of 1.
    assert of_type(operations, Create)[0].checkpoint == 1
    assert of_type(operations, Close) == []
    assert searcher.on_trial_closed(2) == []


def test_dead_members_keep_their_slots_until_truncation_reaches_them() -> None:
    # population 4, truncate_fraction 0.25: k = floor(1.0) = 1 per round.
    searcher = pbt(num_rounds=4, replace_function={"truncate_fraction": 0.25})
    searcher.initial_operations()
    operations = report_round(searcher, {1: "ERRORED", 2: "ERRORED", 3: 0.2, 4: 0.1}, 5)
    # Ranking 4, 3, dead, dead: the worst slot is dead (nothing to close), 4 gets child 5.
    assert of_type(operations, Close) == []
    assert [(create.request_id, create.checkpoint) for create in of_type(operations, Create)] == [(5, 4)]
    # Round 2 ends when the three live members have reported; the remaining dead slot is the worst.
    assert report_round(searcher, {4: 0.1, 3: 0.2}, 10) == []
    operations = report_round(searcher, {5: 0.3}, 5)
    assert of_type(operations, Close) == []
    assert [(create.request_id, create.checkpoint) for create in of_type(operations, Create)] == [(6, 4)]
    # The population is back to four live members: 4, 3, 5, 6.
    operations = report_round(searcher, {4: 0.1, 3: 0.2}, 15) + report_round(searcher, {5: 0.3}, 10)
    operations += report_round(searcher, {6: 0.4}, 5)
    assert of_type(operations, Close) == [Close(6)]


def test_when_every_member_has_ended_the_search_ends() -> None:
    searcher = pbt(population_size=2)
    searcher.initial_operations()
    assert report_round(searcher, {1: "ERRORED", 2: "ERRORED"}, 5) == []
    assert searcher.on_trial_closed(1) == []
    assert searcher.on_trial_closed(2) == [Shutdown(failure=True, cancel=False)]


def test_a_missing_searcher_metric_is_an_error() -> None:
    searcher = pbt()
    searcher.initial_operations()
    with pytest.raises(SearcherError, match=r"'loss' was not reported; reported metrics: acc"):
        searcher.on_validation_completed(1, {"acc": 0.5}, 5)


def test_state_round_trip_mid_round_gives_the_same_children() -> None:
    searcher = pbt()
    searcher.initial_operations()
    report_round(searcher, {1: 0.4, 2: 0.1, 3: 0.3}, 5)
    restored = pbt(seed=42)
    restored.load_state_dict(json.loads(json.dumps(searcher.state_dict())))
    assert report_round(restored, {4: 0.2}, 5) == report_round(searcher, {4: 0.2}, 5)


@settings(max_examples=50, deadline=None)
@given(
    population_size=st.integers(1, 6),
    num_rounds=st.integers(1, 4),
    truncate_fraction=st.sampled_from([0.0, 0.2, 0.5]),
    exit_probability=st.sampled_from([0.0, 0.1, 0.4]),
    seed=st.integers(0, 2**16),
)
def test_errored_members_are_never_parents_and_children_start_at_one_round(
    population_size: int, num_rounds: int, truncate_fraction: float, exit_probability: float, seed: int
) -> None:
    searcher = pbt(seed, population_size=population_size, num_rounds=num_rounds, length_per_round=2,
                   replace_function={"truncate_fraction": truncate_fraction})
    run = drive(searcher, exit_fn=random_exits(exit_probability, seed), rng=seed)
    for request_id, trial in run.trials.items():
        if trial.checkpoint is not None:
            parent_exit = _step_index(run, "on_trial_exited_early", trial.checkpoint)
            assert parent_exit is None or parent_exit > _step_index(run, "on_trial_created", request_id)
            assert trial.reported_lengths[:1] in ([], [2])
    assert all(length % 2 == 0 and length <= 2 * num_rounds
               for trial in run.trials.values() for length in trial.reported_lengths)
    assert len(run.shutdowns) == 1


def _step_index(run, event_name: str, request_id: int) -> int | None:
    """Where in the run the event about this trial happened (None if it never did)."""
    return next((index for index, step in enumerate(run.steps)
                 if step.event.name == event_name and step.event.args[0] == request_id), None)
