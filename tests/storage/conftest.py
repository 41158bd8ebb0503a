"""Fixtures for the storage specification: an open Storage per backend, and rows to hang data on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hpt_core.storage import Storage


@pytest.fixture
def storage(storage_url: str) -> Iterator[Storage]:
    """A Storage on a fresh database, once on SQLite and once on PostgreSQL."""
    opened = Storage(storage_url)
    yield opened
    opened.close()


@pytest.fixture
def experiment_id(storage: Storage) -> int:
    return storage.create_experiment(
        name="exp", config={"searcher": {"name": "random"}}, model_dir="/m", seed=1, secret="s"
    )


@pytest.fixture
def trial_id(storage: Storage, experiment_id: int) -> int:
    return storage.create_trial(experiment_id, 1, {"lr": 0.1}, seed=11)
