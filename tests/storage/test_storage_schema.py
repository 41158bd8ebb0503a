"""The schema version: written once into an empty database, checked on every open."""

from __future__ import annotations

import pytest
import sqlalchemy

from hpt_core.storage import SCHEMA_VERSION, Report, SchemaVersionError, Storage


def _versions(url: str) -> list[int]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sqlalchemy.text("SELECT version FROM schema_version")).scalars())
    finally:
        engine.dispose()


def _set_version(url: str, version: int) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("UPDATE schema_version SET version = :v"), {"v": version})
    finally:
        engine.dispose()


def test_opening_an_empty_database_creates_the_tables_and_stores_version_4(storage_url: str) -> None:
    Storage(storage_url).close()
    assert SCHEMA_VERSION == 4
    assert _versions(storage_url) == [4]
    engine = sqlalchemy.create_engine(storage_url)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"schema_version", "experiments", "trials", "metrics", "checkpoints", "searcher_records", "leases"} <= tables


def test_reopening_keeps_the_data_and_a_single_version_row(storage_url: str) -> None:
    with Storage(storage_url) as storage:
        storage.create_experiment(name="kept", config={}, model_dir=".", seed=0, secret="s")
    with Storage(storage_url) as storage:
        assert [experiment.name for experiment in storage.list_experiments()] == ["kept"]
    assert _versions(storage_url) == [4]


def test_a_database_from_a_newer_hpt_is_refused(storage_url: str) -> None:
    Storage(storage_url).close()
    _set_version(storage_url, SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionError, match="schema version 5, but this hpt knows versions up to 4; upgrade hpt"):
        Storage(storage_url)


def _as_layout_3(url: str) -> None:
    """Turn a database of this version back into the layout of version 3 (no leases, no experiment uuids)."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in ("DROP TABLE leases", "DROP INDEX uq_experiments_uuid",
                              "ALTER TABLE experiments DROP COLUMN uuid",
                              "ALTER TABLE experiments ADD COLUMN controller_pid BIGINT"):
                connection.execute(sqlalchemy.text(statement))
    finally:
        engine.dispose()
    _set_version(url, 3)


def _as_layout_2(url: str) -> None:
    """Give the database the layout version 2 had: that of 3, with reports without their (trial, attempt, seq) key."""
    _as_layout_3(url)
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("DROP INDEX uq_metrics_trial_attempt_seq"))
            connection.execute(sqlalchemy.text("ALTER TABLE metrics DROP COLUMN attempt"))
            connection.execute(sqlalchemy.text("ALTER TABLE metrics DROP COLUMN seq"))
    finally:
        engine.dispose()
    _set_version(url, 2)


def test_a_version_1_database_is_migrated_keeping_its_rows_with_length_trained_from_length_done(
        storage_url: str) -> None:
    with Storage(storage_url) as storage:
        experiment_id = storage.create_experiment(name="old", config={}, model_dir=".", seed=0, secret="s")
        trial_id = storage.create_trial(experiment_id, 1, {"lr": 0.1}, seed=3)
        storage.update_trial(trial_id, length_done=4)
    _as_layout_2(storage_url)
    engine = sqlalchemy.create_engine(storage_url)
    try:
        with engine.begin() as connection:  # the layout version 1 had
            connection.execute(sqlalchemy.text("ALTER TABLE trials DROP COLUMN length_trained"))
    finally:
        engine.dispose()
    _set_version(storage_url, 1)
    with Storage(storage_url) as storage:
        trial = storage.get_trial(trial_id)
        assert (trial.hparams, trial.length_done, trial.length_trained) == ({"lr": 0.1}, 4, 4)
    assert _versions(storage_url) == [4]


def test_a_version_2_database_is_migrated_keeping_its_reports_and_then_keeps_each_sent_report_once(
        storage_url: str) -> None:
    with Storage(storage_url) as storage:
        experiment_id = storage.create_experiment(name="old", config={}, model_dir=".", seed=0, secret="s")
        trial_id = storage.create_trial(experiment_id, 1, {"lr": 0.1}, seed=3)
        storage.add_metrics(trial_id, "training", {"loss": 0.5}, batches=10, epochs=0)
    _as_layout_2(storage_url)
    with Storage(storage_url) as storage:
        report = Report(trial_id, attempt=1, seq=1, kind="training", metrics={"loss": 0.4}, batches=20, epochs=0,
                        length=20)
        assert storage.add_reports([report]) == [True]
        assert storage.add_reports([report]) == [False]
        assert [(record.metrics, record.attempt, record.seq) for record in storage.metrics(trial_id=trial_id)] == [
            ({"loss": 0.5}, None, None), ({"loss": 0.4}, 1, 1)]
    assert _versions(storage_url) == [4]


def test_a_version_3_database_is_migrated_keeping_its_rows_giving_each_experiment_a_uuid_and_no_lease(
        storage_url: str) -> None:
    with Storage(storage_url) as storage:
        first, second = (storage.create_experiment(name=name, config={}, model_dir=".", seed=0, secret="s")
                         for name in ("a", "b"))
        storage.set_experiment_dir(first, "/home/u/.hpt/experiments/1")
        trial_id = storage.create_trial(first, 1, {"lr": 0.1}, seed=3)
    _as_layout_3(storage_url)
    with Storage(storage_url) as storage:
        experiments = storage.list_experiments()
        assert [(e.name, e.experiment_dir) for e in experiments] == [("a", "/home/u/.hpt/experiments/1"), ("b", None)]
        assert len({e.uuid for e in experiments}) == 2 and all(len(e.uuid) == 36 for e in experiments)
        assert storage.get_trial(trial_id).hparams == {"lr": 0.1}
        assert storage.lease(first) is None
        storage.acquire_lease(second, token="t", host="h", pid=1, seconds=60)
        assert storage.lease(second).host == "h"
    assert _versions(storage_url) == [4]


def test_an_in_memory_sqlite_database_is_refused() -> None:
    with pytest.raises(ValueError, match="in-memory SQLite database"):
        Storage("sqlite://")


def test_the_folder_of_a_sqlite_file_is_created(tmp_path) -> None:
    path = tmp_path / "a" / "b" / "hpt.db"
    Storage(f"sqlite:///{path}").close()
    assert path.is_file()


@pytest.mark.postgres
def test_the_repr_hides_the_password_of_the_url(postgres_url: str) -> None:
    url = sqlalchemy.make_url(postgres_url).set(password="topsecret").render_as_string(hide_password=False)
    with Storage(url) as storage:
        assert storage.url == url
        assert "topsecret" not in repr(storage)
