"""The searcher log: append-only, per experiment, seq increasing from 1."""

from __future__ import annotations

import pytest

from hpt_core.operations import Create, operation_to_dict
from hpt_core.storage import RecordNotFound, Storage


def test_records_come_back_in_order_with_increasing_seq(storage: Storage, experiment_id: int) -> None:
    payloads = [
        ("event", {"type": "initial_operations"}),
        ("operation", operation_to_dict(Create(request_id=1, hparams={"lr": 0.1, "act": "NaN"}))),
        ("event", {"type": "on_validation_completed", "request_id": 1, "metric": float("nan"), "length": 10}),
        ("event", {"type": "on_trial_closed", "request_id": 1}),
    ]
    seqs = [storage.append_searcher_record(experiment_id, kind, payload) for kind, payload in payloads]
    assert seqs == [1, 2, 3, 4]
    records = storage.searcher_records(experiment_id)
    assert [(record.seq, record.kind) for record in records] == [
        (1, "event"),
        (2, "operation"),
        (3, "event"),
        (4, "event"),
    ]
    assert records[1].payload == payloads[1][1]
    assert records[2].payload["metric"] != records[2].payload["metric"]
    assert {record.experiment_id for record in records} == {experiment_id}
    assert [record.created_at for record in records] == sorted(record.created_at for record in records)


def test_each_experiment_has_its_own_sequence(storage: Storage) -> None:
    first = storage.create_experiment(name="a", config={}, model_dir=".", seed=0, secret="s")
    second = storage.create_experiment(name="b", config={}, model_dir=".", seed=0, secret="s")
    assert storage.append_searcher_record(first, "event", {"n": 1}) == 1
    assert storage.append_searcher_record(first, "event", {"n": 2}) == 2
    assert storage.append_searcher_record(second, "event", {"n": 1}) == 1
    assert [record.payload for record in storage.searcher_records(second)] == [{"n": 1}]
    assert storage.searcher_records(999) == []


def test_unknown_kinds_and_experiments_are_refused(storage: Storage, experiment_id: int) -> None:
    with pytest.raises(ValueError, match="searcher record kind must be one of event, operation, snapshot, but got 'op'"):
        storage.append_searcher_record(experiment_id, "op", {})
    with pytest.raises(RecordNotFound, match="experiment 999 does not exist"):
        storage.append_searcher_record(999, "event", {})
    assert storage.searcher_records(experiment_id) == []


def test_only_the_latest_snapshot_is_kept_and_records_can_be_read_after_it(storage: Storage, experiment_id: int) -> None:
    storage.append_searcher_record(experiment_id, "event", {"n": 1})
    first = storage.save_snapshot(experiment_id, {"after": 1})
    storage.append_searcher_record(experiment_id, "event", {"n": 2})
    second = storage.save_snapshot(experiment_id, {"after": 2})
    storage.append_searcher_record(experiment_id, "event", {"n": 3})
    assert (first, second) == (2, 4)
    assert storage.latest_snapshot(experiment_id).payload == {"after": 2}
    assert [record.seq for record in storage.searcher_records(experiment_id)] == [1, 3, 4, 5]
    assert [record.payload for record in storage.searcher_records(experiment_id, after=second)] == [{"n": 3}]
