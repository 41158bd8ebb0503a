"""Leases: one holder per experiment, taken by compare-and-set, renewed and given up only by its holder."""

from __future__ import annotations

import threading
import time

import pytest

from hpt_core.storage import LeaseHeld, Storage


def _take(storage: Storage, experiment_id: int, token: str, seconds: float = 60, **options):
    return storage.acquire_lease(experiment_id, token=token, host="node-1", pid=100, seconds=seconds, **options)


def test_a_lease_names_its_holder_and_when_it_was_taken(storage: Storage, experiment_id: int) -> None:
    taken = _take(storage, experiment_id, "a")
    lease = storage.lease(experiment_id)
    assert (lease.host, lease.pid, lease.token, lease.expired) == ("node-1", 100, "a", False)
    assert lease.acquired_at == taken.acquired_at and lease.expires_at > lease.acquired_at


def test_a_live_lease_cannot_be_taken_by_another_holder(storage: Storage, experiment_id: int) -> None:
    _take(storage, experiment_id, "a")
    with pytest.raises(LeaseHeld, match="leased by process 100 on host node-1") as held:
        _take(storage, experiment_id, "b")
    assert held.value.lease.token == "a" and storage.lease(experiment_id).token == "a"


def test_an_expired_lease_is_taken_over_and_its_old_holder_can_no_longer_renew_it(
        storage: Storage, experiment_id: int) -> None:
    _take(storage, experiment_id, "a", seconds=0.2)
    time.sleep(0.3)
    assert storage.lease(experiment_id).expired
    _take(storage, experiment_id, "b")
    assert storage.lease(experiment_id).token == "b"
    assert storage.renew_lease(experiment_id, "a", 60) is False
    storage.release_lease(experiment_id, "a")  # the old holder gives up what is no longer its own: nothing happens
    assert storage.lease(experiment_id).token == "b"


def test_a_holder_known_to_be_dead_is_replaced_by_naming_its_token(storage: Storage, experiment_id: int) -> None:
    _take(storage, experiment_id, "a")
    with pytest.raises(LeaseHeld):
        _take(storage, experiment_id, "b", replacing="wrong")
    _take(storage, experiment_id, "b", replacing="a")
    assert storage.lease(experiment_id).token == "b"


def test_renewing_keeps_the_lease_live_and_releasing_frees_it(storage: Storage, experiment_id: int) -> None:
    _take(storage, experiment_id, "a", seconds=0.3)
    for _ in range(3):
        time.sleep(0.15)
        assert storage.renew_lease(experiment_id, "a", 0.3) is True
    assert not storage.lease(experiment_id).expired
    storage.release_lease(experiment_id, "a")
    assert storage.lease(experiment_id) is None
    _take(storage, experiment_id, "b")


def test_of_holders_racing_for_one_lease_exactly_one_wins(storage: Storage, experiment_id: int) -> None:
    start = threading.Barrier(6)
    winners, losers = [], []

    def race(token: str) -> None:
        start.wait()
        try:
            _take(storage, experiment_id, token)
            winners.append(token)
        except LeaseHeld as held:
            losers.append(held.lease.token)

    threads = [threading.Thread(target=race, args=(f"t{index}",)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and losers == [winners[0]] * 5
    assert storage.lease(experiment_id).token == winners[0]


def test_deleting_an_experiment_removes_its_lease(storage: Storage, experiment_id: int) -> None:
    _take(storage, experiment_id, "a")
    storage.delete_experiment(experiment_id)
    assert storage.lease(experiment_id) is None
