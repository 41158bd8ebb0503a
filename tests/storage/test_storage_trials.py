"""Trials: created PENDING per searcher request, updated field by field, unknown ids named in errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hpt_core.operations import ExitedReason
from hpt_core.storage import TRIAL_UPDATABLE_FIELDS, RecordNotFound, Storage, TrialState


def test_a_new_trial_is_pending_with_its_hparams(storage: Storage, experiment_id: int) -> None:
    hparams = {"lr": 0.001, "model": {"layers": 3, "act": "relu", "dropout": {"p": 0.5}}, "tags": ["a", "ü"]}
    trial_id = storage.create_trial(experiment_id, 7, hparams, seed=123)
    trial = storage.get_trial(trial_id)
    assert (trial.id, trial.experiment_id, trial.request_id) == (trial_id, experiment_id, 7)
    assert trial.hparams == hparams
    assert trial.state == TrialState.PENDING
    assert (trial.end_reason, trial.restarts, trial.parent_request_id, trial.seed) == (None, 0, None, 123)
    assert (trial.target_length, trial.length_done) == (None, 0)
    assert trial.started_at is None and trial.ended_at is None
    assert trial.created_at.utcoffset() == timedelta(0)


def test_a_warm_started_trial_keeps_its_parent_request(storage: Storage, experiment_id: int) -> None:
    trial_id = storage.create_trial(experiment_id, 2, {}, seed=0, parent_request_id=1)
    assert storage.get_trial(trial_id).parent_request_id == 1


def test_trial_ids_are_unique_across_experiments_and_request_ids_per_experiment(storage: Storage) -> None:
    first = storage.create_experiment(name="a", config={}, model_dir=".", seed=0, secret="s")
    second = storage.create_experiment(name="b", config={}, model_dir=".", seed=0, secret="s")
    ids = [storage.create_trial(first, 1, {}, seed=0), storage.create_trial(second, 1, {}, seed=0)]
    assert ids[0] != ids[1]
    assert storage.trial_by_request(second, 1).id == ids[1]
    with pytest.raises(ValueError, match=f"experiment {first} already has a trial with request_id 1"):
        storage.create_trial(first, 1, {}, seed=0)


def test_trials_are_listed_by_request_id(storage: Storage, experiment_id: int) -> None:
    for request_id in (5, 2, 9, 1):
        storage.create_trial(experiment_id, request_id, {"r": request_id}, seed=request_id)
    other = storage.create_experiment(name="other", config={}, model_dir=".", seed=0, secret="s")
    storage.create_trial(other, 3, {}, seed=0)
    trials = storage.list_trials(experiment_id)
    assert [trial.request_id for trial in trials] == [1, 2, 5, 9]
    assert [trial.hparams for trial in trials] == [{"r": 1}, {"r": 2}, {"r": 5}, {"r": 9}]


def test_every_updatable_field_is_stored(storage: Storage, trial_id: int) -> None:
    started = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    ended = datetime(2024, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    storage.update_trial(trial_id, state="RUNNING", started_at=started, target_length=100)
    storage.update_trial(trial_id, length_done=40, restarts=2)
    storage.update_trial(
        trial_id, state=TrialState.ERROR, end_reason=ExitedReason.ERRORED, ended_at=ended, target_length=None
    )
    trial = storage.get_trial(trial_id)
    assert trial.state == "ERROR"
    assert trial.end_reason == "ERRORED" and type(trial.end_reason) is str
    assert (trial.restarts, trial.length_done, trial.target_length) == (2, 40, None)
    assert trial.started_at == started
    assert trial.ended_at == ended and trial.ended_at.utcoffset() == timedelta(0)
    assert trial.ended_at.hour == 12


def test_updating_one_trial_leaves_the_others_alone(storage: Storage, experiment_id: int, trial_id: int) -> None:
    other = storage.create_trial(experiment_id, 2, {}, seed=0)
    storage.update_trial(trial_id, state="COMPLETED")
    assert storage.get_trial(other).state == "PENDING"


def test_an_unknown_update_field_is_refused_naming_the_allowed_ones(storage: Storage, trial_id: int) -> None:
    with pytest.raises(TypeError, match="unknown field.*hparams.*allowed: " + ", ".join(TRIAL_UPDATABLE_FIELDS)):
        storage.update_trial(trial_id, hparams={"lr": 1})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"state": "FINISHED"}, "trial state must be one of PENDING, RUNNING, PAUSED, COMPLETED, CANCELED, ERROR"),
        ({"restarts": -1}, "restarts must be >= 0"),
        ({"length_done": 1.5}, "length_done must be an integer"),
        ({"started_at": datetime(2024, 1, 1)}, "started_at must be a timezone-aware datetime"),
    ],
)
def test_invalid_update_values_are_refused(storage: Storage, trial_id: int, fields: dict, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        storage.update_trial(trial_id, **fields)
    assert storage.get_trial(trial_id).state == "PENDING"


def test_an_unknown_trial_id_gives_a_clear_error(storage: Storage, experiment_id: int) -> None:
    with pytest.raises(RecordNotFound, match="^trial 424242 does not exist$"):
        storage.get_trial(424242)
    with pytest.raises(RecordNotFound, match="^trial 424242 does not exist$"):
        storage.update_trial(424242, state="RUNNING")
    with pytest.raises(RecordNotFound, match="^trial 424242 does not exist$"):
        storage.update_trial(424242)
    with pytest.raises(RecordNotFound, match=f"experiment {experiment_id} has no trial with request_id 77"):
        storage.trial_by_request(experiment_id, 77)


def test_a_trial_of_an_unknown_experiment_is_refused(storage: Storage) -> None:
    with pytest.raises(RecordNotFound, match="experiment 31337 does not exist"):
        storage.create_trial(31337, 1, {}, seed=0)
