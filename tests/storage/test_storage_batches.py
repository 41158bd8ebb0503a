"""Batches: one thread's writes made one transaction, committed once, with each method's own all-or-nothing kept."""

import pytest

from hpt_core.storage import RecordNotFound, Storage


def test_a_batch_s_writes_are_seen_inside_it_and_by_others_only_once_it_commits(storage, storage_url, experiment_id):
    other = Storage(storage_url)
    try:
        with storage.batch() as batch:
            trial_id = storage.create_trial(experiment_id, 1, {"lr": 0.1}, seed=1)
            storage.update_trial(trial_id, state="RUNNING")
            storage.append_searcher_record(experiment_id, "event", {"name": "on_trial_created", "args": [1]})
            assert storage.get_trial(trial_id).state == "RUNNING"
            assert len(storage.searcher_records(experiment_id)) == 1
            assert other.list_trials(experiment_id) == []
            batch.commit()
            assert other.get_trial(trial_id).state == "RUNNING"
            storage.update_trial(trial_id, state="COMPLETED")
            assert other.get_trial(trial_id).state == "RUNNING"
        assert other.get_trial(trial_id).state == "COMPLETED"
    finally:
        other.close()


def test_a_failure_inside_a_batch_undoes_only_the_failed_write_and_keeps_what_succeeded(storage, experiment_id):
    with pytest.raises(RecordNotFound):
        with storage.batch():
            trial_id = storage.create_trial(experiment_id, 1, {"lr": 0.1}, seed=1)
            with pytest.raises(ValueError, match="already has a trial with request_id 1"):
                storage.create_trial(experiment_id, 1, {"lr": 0.2}, seed=2)
            storage.update_trial(trial_id, state="RUNNING")
            storage.update_trial(trial_id + 1000, state="RUNNING")
    (trial,) = storage.list_trials(experiment_id)
    assert (trial.hparams, trial.state) == ({"lr": 0.1}, "RUNNING")


def test_a_batch_inside_a_batch_is_part_of_it(storage, storage_url, experiment_id):
    other = Storage(storage_url)
    try:
        with storage.batch():
            with storage.batch():
                storage.create_trial(experiment_id, 1, {"lr": 0.1}, seed=1)
            assert other.list_trials(experiment_id) == []
        assert len(other.list_trials(experiment_id)) == 1
    finally:
        other.close()
