"""Experiments: created ACTIVE, config round-trips exactly, state changes stamp ended_at."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from hpt_core.storage import ExperimentState, RecordNotFound, Storage

ODD_CONFIG = {
    "name": "Ünïcødé 实验 🚀 'quoted' \"double\" \\ back\nnewline",
    "hyperparameters": {
        "lr": {"type": "log", "minval": -5.0, "maxval": -1.0, "base": 10},
        "layers": {"nested": {"type": "categorical", "vals": [1, "two", None, True, 3.5, "NaN", "\\Infinity"]}},
        "<img src=x onerror=alert(1)>": {"type": "const", "val": "x.y.z"},
    },
    "searcher": {"name": "adaptive_asha", "metric": "val.loss", "smaller_is_better": True, "max_length": 100},
    "empty": {},
    "list_of_lists": [[1, 2], [], [{"a": None}]],
}


def test_a_new_experiment_is_active_and_keeps_its_fields(storage: Storage) -> None:
    before = datetime.now(UTC)
    experiment_id = storage.create_experiment(
        name="digits", config={"a": 1}, model_dir="/models/digits", seed=42, secret="s3cret", description="d"
    )
    experiment = storage.get_experiment(experiment_id)
    assert experiment.id == experiment_id
    assert (experiment.name, experiment.description, experiment.config) == ("digits", "d", {"a": 1})
    assert (experiment.model_dir, experiment.seed, experiment.secret) == ("/models/digits", 42, "s3cret")
    assert experiment.state == ExperimentState.ACTIVE == "ACTIVE"
    assert experiment.experiment_dir is None
    assert experiment.searcher_state is None
    assert experiment.progress == 0.0
    assert experiment.ended_at is None and storage.lease(experiment_id) is None
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", experiment.uuid)
    assert experiment.created_at.tzinfo is not None and experiment.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= experiment.created_at <= datetime.now(UTC) + timedelta(seconds=1)


def test_the_secret_is_not_shown_in_the_record_repr(storage: Storage) -> None:
    experiment_id = storage.create_experiment(name="x", config={}, model_dir=".", seed=0, secret="hunter2")
    assert "hunter2" not in repr(storage.get_experiment(experiment_id))


def test_config_with_unicode_and_odd_names_round_trips_exactly(storage: Storage) -> None:
    experiment_id = storage.create_experiment(
        name=ODD_CONFIG["name"], config=ODD_CONFIG, model_dir="/tmp/ü", seed=2**32 - 1, secret="s"
    )
    experiment = storage.get_experiment(experiment_id)
    assert experiment.config == ODD_CONFIG
    assert list(experiment.config) == list(ODD_CONFIG)
    assert experiment.name == ODD_CONFIG["name"]
    assert experiment.seed == 2**32 - 1


def test_an_experiment_may_have_no_name(storage: Storage) -> None:
    experiment_id = storage.create_experiment(name=None, config={}, model_dir=".", seed=0, secret="s")
    assert storage.get_experiment(experiment_id).name is None


def test_experiments_are_listed_oldest_first_with_distinct_ids(storage: Storage) -> None:
    ids = [
        storage.create_experiment(name=f"e{index}", config={"index": index}, model_dir=".", seed=index, secret="s")
        for index in range(3)
    ]
    assert len(set(ids)) == 3
    assert [experiment.id for experiment in storage.list_experiments()] == ids
    assert [experiment.config for experiment in storage.list_experiments()] == [{"index": i} for i in range(3)]


def test_the_experiment_dir_is_set_after_creation(storage: Storage) -> None:
    experiment_id = storage.create_experiment(name="x", config={}, model_dir=".", seed=0, secret="s")
    storage.set_experiment_dir(experiment_id, "/home/u/.hpt/experiments/1")
    assert storage.get_experiment(experiment_id).experiment_dir == "/home/u/.hpt/experiments/1"


@pytest.mark.parametrize("terminal", ["COMPLETED", "CANCELED", "ERROR"])
def test_terminal_states_set_ended_at_and_reactivating_clears_it(storage: Storage, terminal: str) -> None:
    experiment_id = storage.create_experiment(name="x", config={}, model_dir=".", seed=0, secret="s")
    storage.set_experiment_state(experiment_id, "PAUSED")
    assert storage.get_experiment(experiment_id).ended_at is None
    storage.set_experiment_state(experiment_id, terminal)
    ended = storage.get_experiment(experiment_id)
    assert ended.state == terminal
    assert ended.ended_at is not None and ended.ended_at >= ended.created_at
    storage.set_experiment_state(experiment_id, ExperimentState.ACTIVE)
    assert storage.get_experiment(experiment_id).ended_at is None


def test_an_unknown_experiment_state_is_refused_naming_the_allowed_ones(storage: Storage) -> None:
    experiment_id = storage.create_experiment(name="x", config={}, model_dir=".", seed=0, secret="s")
    with pytest.raises(ValueError, match="ACTIVE, PAUSED, COMPLETED, CANCELED, ERROR.*'DONE'"):
        storage.set_experiment_state(experiment_id, "DONE")


def test_searcher_state_and_progress_are_saved_with_non_finite_floats(storage: Storage) -> None:
    experiment_id = storage.create_experiment(name="x", config={}, model_dir=".", seed=0, secret="s")
    state = {"rng": {"state": [1, 2, 3]}, "best": float("inf"), "worst": float("-inf"), "open": {"3": [0.5]}}
    storage.save_searcher_state(experiment_id, state, 0.25)
    experiment = storage.get_experiment(experiment_id)
    assert experiment.searcher_state == state
    assert experiment.progress == 0.25


@pytest.mark.parametrize("progress", [-0.1, 1.5, float("nan"), "0.5"])
def test_progress_outside_zero_to_one_is_refused(storage: Storage, progress: object) -> None:
    experiment_id = storage.create_experiment(name="x", config={}, model_dir=".", seed=0, secret="s")
    with pytest.raises(ValueError, match=r"progress must be a number in \[0, 1\]"):
        storage.save_searcher_state(experiment_id, {}, progress)  # type: ignore[arg-type]


def test_every_experiment_gets_its_own_uuid(storage: Storage) -> None:
    uuids = {storage.get_experiment(storage.create_experiment(name="x", config={}, model_dir=".", seed=0,
                                                              secret="s")).uuid for _ in range(3)}
    assert len(uuids) == 3


def test_an_unknown_experiment_gives_a_clear_not_found_error(storage: Storage) -> None:
    with pytest.raises(RecordNotFound, match="^experiment 999 does not exist$"):
        storage.get_experiment(999)
    with pytest.raises(KeyError):
        storage.set_experiment_state(999, "PAUSED")
    with pytest.raises(RecordNotFound, match="experiment 999"):
        storage.save_searcher_state(999, {}, 0.0)


def test_a_config_that_is_not_json_data_is_refused_naming_the_place(storage: Storage) -> None:
    with pytest.raises(TypeError, match=r"config\['searcher'\]\['metric'\].*object"):
        storage.create_experiment(
            name="x", config={"searcher": {"metric": object()}}, model_dir=".", seed=0, secret="s"
        )
    with pytest.raises(TypeError, match=r"config\['grid'\]: keys must be strings.*1"):
        storage.create_experiment(name="x", config={"grid": {1: "a"}}, model_dir=".", seed=0, secret="s")
    assert storage.list_experiments() == []


def test_data_written_is_seen_by_a_second_storage_on_the_same_url(storage_url: str) -> None:
    with Storage(storage_url) as first:
        experiment_id = first.create_experiment(name="x", config={"k": [1]}, model_dir=".", seed=0, secret="s")
    with Storage(storage_url) as second:
        assert second.get_experiment(experiment_id).config == {"k": [1]}


@pytest.mark.parametrize(("text", "problem"), [("a\x00b", "NUL characters"), ("a\udc80b", "lone surrogates")])
def test_text_fields_that_a_database_cannot_store_are_refused_on_every_backend(
    storage: Storage, text: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=f"name must .*{problem}"):
        storage.create_experiment(name=text, config={}, model_dir=".", seed=0, secret="s")
    experiment_id = storage.create_experiment(
        name="ok", config={"json keeps it": text}, model_dir=".", seed=0, secret="s"
    )
    assert storage.get_experiment(experiment_id).config == {"json keeps it": text}
