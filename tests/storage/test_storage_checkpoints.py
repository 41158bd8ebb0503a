"""Checkpoints: the latest is the one with most batches (newest among equals); deleted ones are hidden."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from hpt_core.storage import CheckpointState, RecordNotFound, Storage


def _add(storage: Storage, trial_id: int, batches: int, **extra: object) -> str:
    checkpoint_id = str(uuid.uuid4())
    options: dict = {"path": f"/ckpt/{checkpoint_id}", "epochs": batches // 10, "length": batches, "metadata": {}}
    options.update(extra)
    storage.add_checkpoint(trial_id, checkpoint_id, batches=batches, **options)
    return checkpoint_id


def test_a_checkpoint_is_recorded_completed_with_its_fields(storage: Storage, trial_id: int) -> None:
    metadata = {"framework": "lightning", "files": ["model.ckpt"], "loss": float("nan"), "ü": {"<b>": 1}}
    record = storage.add_checkpoint(
        trial_id, "c0ffee", path="/x/c0ffee", batches=300, epochs=3, length=None, metadata=metadata
    )
    assert (record.id, record.trial_id, record.path) == ("c0ffee", trial_id, "/x/c0ffee")
    assert (record.batches, record.epochs, record.length) == (300, 3, None)
    assert record.metadata["files"] == ["model.ckpt"] and record.metadata["ü"] == {"<b>": 1}
    assert record.metadata["loss"] != record.metadata["loss"]
    assert record.state == CheckpointState.COMPLETED
    assert record.created_at.utcoffset() == timedelta(0)
    assert storage.get_checkpoint("c0ffee") == record


def test_the_latest_checkpoint_has_the_most_batches(storage: Storage, trial_id: int) -> None:
    assert storage.latest_checkpoint(trial_id) is None
    _add(storage, trial_id, 100)
    most = _add(storage, trial_id, 300)
    _add(storage, trial_id, 200)
    assert storage.latest_checkpoint(trial_id).id == most


def test_among_checkpoints_with_equal_batches_the_newest_is_latest(storage: Storage, trial_id: int) -> None:
    _add(storage, trial_id, 100)
    _add(storage, trial_id, 100)
    newest = _add(storage, trial_id, 100)
    assert storage.latest_checkpoint(trial_id).id == newest


def test_the_latest_checkpoint_is_per_trial(storage: Storage, experiment_id: int, trial_id: int) -> None:
    other_trial = storage.create_trial(experiment_id, 2, {}, seed=0)
    own = _add(storage, trial_id, 100)
    _add(storage, other_trial, 500)
    assert storage.latest_checkpoint(trial_id).id == own


def test_deleted_checkpoints_are_hidden_unless_asked_for(storage: Storage, trial_id: int) -> None:
    older = _add(storage, trial_id, 100)
    newer = _add(storage, trial_id, 200)
    storage.mark_checkpoint_deleted(newer)
    assert [c.id for c in storage.checkpoints(trial_id=trial_id)] == [older]
    assert [c.id for c in storage.checkpoints(trial_id=trial_id, include_deleted=True)] == [older, newer]
    assert storage.latest_checkpoint(trial_id).id == older
    assert storage.get_checkpoint(newer).state == "DELETED"
    storage.mark_checkpoint_deleted(older)
    assert storage.latest_checkpoint(trial_id) is None


def test_checkpoints_are_listed_in_creation_order_by_trial_or_experiment(storage: Storage) -> None:
    experiments = [storage.create_experiment(name=n, config={}, model_dir=".", seed=0, secret="s") for n in "ab"]
    trials = [storage.create_trial(experiment, 1, {}, seed=0) for experiment in experiments]
    created = [(trial, _add(storage, trial, batches)) for batches in (300, 100, 200) for trial in trials]
    assert [c.id for c in storage.checkpoints()] == [checkpoint for _, checkpoint in created]
    of_first = [checkpoint for trial, checkpoint in created if trial == trials[0]]
    assert [c.id for c in storage.checkpoints(experiment_id=experiments[0])] == of_first
    assert [c.id for c in storage.checkpoints(trial_id=trials[0])] == of_first
    assert storage.checkpoints(trial_id=trials[0], experiment_id=experiments[1]) == []


def test_a_checkpoint_id_is_used_once(storage: Storage, trial_id: int) -> None:
    storage.add_checkpoint(trial_id, "same", path="/a", batches=1, epochs=0, length=1, metadata={})
    with pytest.raises(ValueError, match="a checkpoint with id 'same' already exists"):
        storage.add_checkpoint(trial_id, "same", path="/b", batches=2, epochs=0, length=2, metadata={})
    assert storage.get_checkpoint("same").path == "/a"


def test_unknown_checkpoints_and_trials_give_clear_errors(storage: Storage) -> None:
    with pytest.raises(RecordNotFound, match="^checkpoint 'nope' does not exist$"):
        storage.get_checkpoint("nope")
    with pytest.raises(RecordNotFound, match="^checkpoint 'nope' does not exist$"):
        storage.mark_checkpoint_deleted("nope")
    with pytest.raises(RecordNotFound, match="^trial 8080 does not exist$"):
        storage.add_checkpoint(8080, "x", path="/x", batches=0, epochs=0, length=None, metadata={})
