"""Single search: one trial, sampled like random search, trained to max_length."""

from __future__ import annotations

import json

import pytest

from hpt_core import create_searcher
from hpt_core.errors import SearcherError
from hpt_core.searchers import Close, Create, SearchMethod, Shutdown, ValidateAfter

SPACE = {
    "lr": {"type": "log", "minval": -4, "maxval": -2},
    "layers": {"type": "int", "minval": 1, "maxval": 8, "default": 3},
    "act": {"type": "categorical", "vals": ["relu", "tanh"]},
    "optimizer": {"momentum": {"type": "double", "minval": 0.0, "maxval": 0.8}, "name": "sgd"},
}


def single_search(seed: int = 0, **searcher) -> SearchMethod:
    fields = {"name": "single", "metric": "loss", "max_length": {"epochs": 6}, **searcher}
    return create_searcher({"searcher": fields, "hyperparameters": SPACE}, seed=seed)


def test_one_trial_sampled_from_the_space_and_trained_to_max_length() -> None:
    (create, validate) = single_search().initial_operations()
    hparams = create.hparams
    assert create.request_id == 1 and create.checkpoint is None and validate == ValidateAfter(1, 6)
    assert 1e-4 <= hparams["lr"] <= 1e-2 and 1 <= hparams["layers"] <= 8 and hparams["act"] in ("relu", "tanh")
    assert 0.0 <= hparams["optimizer"]["momentum"] < 0.8 and hparams["optimizer"]["name"] == "sgd"


def test_the_sample_depends_on_the_seed_only() -> None:
    assert single_search(seed=4).initial_operations() == single_search(seed=4).initial_operations()
    samples = {json.dumps(single_search(seed=seed).initial_operations()[0].hparams) for seed in range(5)}
    assert len(samples) > 1


def test_the_trial_is_closed_at_max_length_then_the_search_shuts_down() -> None:
    searcher = single_search()
    searcher.initial_operations()
    assert searcher.on_validation_completed(1, {"loss": 0.2}, 6) == [Close(1)]
    assert searcher.on_trial_closed(1) == [Shutdown(failure=False, cancel=False)]


def test_an_invalid_hp_trial_is_not_replaced() -> None:
    searcher = single_search()
    searcher.initial_operations()
    assert searcher.on_trial_exited_early(1, "INVALID_HP") == []
    # The search ends; an invalid-hyperparameter trial is not a failure.
    assert searcher.on_trial_closed(1) == [Shutdown(failure=False, cancel=False)]
    assert searcher.progress() == 1.0


@pytest.mark.parametrize(("reason", "expected"), [
    ("ERRORED", Shutdown(failure=True, cancel=False)),
    ("USER_CANCELED", Shutdown(failure=False, cancel=True)),
    ("USER_REQUESTED_STOP", Shutdown(failure=False, cancel=False)),
])
def test_outcome_follows_the_only_trial(reason: str, expected: Shutdown) -> None:
    searcher = single_search()
    searcher.initial_operations()
    searcher.on_trial_exited_early(1, reason)
    assert searcher.on_trial_closed(1) == [expected]


def test_progress_is_the_trials_completion() -> None:
    searcher = single_search()
    searcher.initial_operations()
    assert searcher.progress() == 0.0
    searcher.on_validation_completed(1, {"loss": 0.2}, 3)
    assert searcher.progress() == pytest.approx(0.5)  # 3 of 6 epochs
    searcher.on_validation_completed(1, {"loss": 0.1}, 6)
    assert searcher.progress() == 1.0


def test_max_concurrent_trials_zero_still_means_one_trial() -> None:
    operations = single_search(max_concurrent_trials=0).initial_operations()
    assert [type(operation) for operation in operations] == [Create, ValidateAfter]


def test_a_missing_searcher_metric_is_an_error() -> None:
    searcher = single_search()
    searcher.initial_operations()
    with pytest.raises(SearcherError, match=r"'loss' was not reported; reported metrics: none"):
        searcher.on_validation_completed(1, {}, 6)


def test_state_round_trip() -> None:
    searcher = single_search()
    searcher.initial_operations()
    searcher.on_validation_completed(1, {"loss": 0.2}, 3)
    restored = single_search(seed=5)
    restored.load_state_dict(json.loads(json.dumps(searcher.state_dict())))
    assert restored.progress() == searcher.progress()
    assert restored.on_validation_completed(1, {"loss": 0.1}, 6) == [Close(1)]
    assert restored.on_trial_closed(1) == [Shutdown()]
