"""Metrics: reports round-trip with any metric name and non-finite values, filtered and in order."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from hpt_core.storage import RecordNotFound, Storage

HOSTILE_NAMES = [
    "<img src=x onerror=alert(1)>",
    "val.loss",
    "a.b.c",
    "$where",
    "'; DROP TABLE metrics; --",
    "ünï 学习率 🚀",
    "",
    " ",
    "new\nline\ttab",
    "back\\slash",
    '"quoted"',
    "NaN",
    "Infinity",
    "__proto__",
    "x" * 300,
    "nul\x00char",
    "lone \ud800 surrogate",
]


def test_metrics_with_hostile_names_round_trip_intact(storage: Storage, trial_id: int) -> None:
    reported = {name: float(index) for index, name in enumerate(HOSTILE_NAMES)}
    storage.add_metrics(trial_id, "validation", reported, batches=10, epochs=1)
    [record] = storage.metrics(trial_id=trial_id)
    assert record.metrics == reported
    assert list(record.metrics) == HOSTILE_NAMES


def test_non_finite_values_round_trip_as_floats(storage: Storage, trial_id: int) -> None:
    storage.add_metrics(
        trial_id,
        "training",
        {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "zero": 0.0, "big": 1e308, "int": 3},
        batches=1,
        epochs=0,
    )
    values = storage.metrics(trial_id=trial_id)[0].metrics
    assert math.isnan(values["nan"]) and isinstance(values["nan"], float)
    assert values["inf"] == math.inf and values["-inf"] == -math.inf
    assert (values["zero"], values["big"], values["int"]) == (0.0, 1e308, 3)
    assert type(values["int"]) is int


def test_string_values_that_look_like_non_finite_floats_stay_strings(storage: Storage, trial_id: int) -> None:
    reported = {"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": "\\NaN", "e": "\\\\Infinity", "f": "nan"}
    storage.add_metrics(trial_id, "validation", reported, batches=1, epochs=0)
    assert storage.metrics(trial_id=trial_id)[0].metrics == reported


def test_a_report_keeps_its_trial_kind_batches_epochs_and_time(storage: Storage, trial_id: int) -> None:
    metric_id = storage.add_metrics(trial_id, "validation", {"loss": 0.5}, batches=640, epochs=2)
    [record] = storage.metrics()
    assert (record.id, record.trial_id, record.kind) == (metric_id, trial_id, "validation")
    assert (record.batches, record.epochs) == (640, 2)
    assert record.reported_at.utcoffset() == timedelta(0)


def test_metrics_are_filtered_by_trial_experiment_and_kind_in_report_order(storage: Storage) -> None:
    experiments = [storage.create_experiment(name=n, config={}, model_dir=".", seed=0, secret="s") for n in "ab"]
    trials = {
        (experiment, request): storage.create_trial(experiment, request, {}, seed=0)
        for experiment in experiments
        for request in (1, 2)
    }
    for step in range(3):
        for (experiment, request), trial in trials.items():
            for kind in ("training", "validation"):
                storage.add_metrics(trial, kind, {"e": experiment, "r": request, "step": step}, batches=step, epochs=0)

    everything = storage.metrics()
    assert len(everything) == 24
    assert [record.id for record in everything] == sorted(record.id for record in everything)

    first_trial = trials[(experiments[0], 1)]
    of_trial = storage.metrics(trial_id=first_trial, kind="validation")
    assert [(r.kind, r.metrics["step"]) for r in of_trial] == [("validation", 0), ("validation", 1), ("validation", 2)]
    assert {r.trial_id for r in of_trial} == {first_trial}

    of_experiment = storage.metrics(experiment_id=experiments[1], kind="training")
    assert len(of_experiment) == 6
    assert {(r.metrics["e"], r.kind) for r in of_experiment} == {(experiments[1], "training")}
    assert [r.metrics["step"] for r in of_experiment] == [0, 0, 1, 1, 2, 2]

    assert storage.metrics(trial_id=first_trial, experiment_id=experiments[1]) == []


def test_an_unknown_metric_kind_is_refused(storage: Storage, trial_id: int) -> None:
    with pytest.raises(ValueError, match="metric kind must be one of training, validation, but got 'test'"):
        storage.add_metrics(trial_id, "test", {"loss": 1.0}, batches=0, epochs=0)
    with pytest.raises(ValueError, match="metric kind"):
        storage.metrics(kind="Validation")


def test_metrics_of_an_unknown_trial_are_refused_clearly(storage: Storage, trial_id: int) -> None:
    with pytest.raises(RecordNotFound, match="^trial 999999 does not exist$"):
        storage.add_metrics(999999, "training", {"loss": 1.0}, batches=0, epochs=0)
    assert storage.metrics() == []


def test_metric_values_that_are_not_json_data_are_refused_naming_the_metric(storage: Storage, trial_id: int) -> None:
    with pytest.raises(TypeError, match=r"metrics\['weights'\].*set"):
        storage.add_metrics(trial_id, "training", {"weights": {1.0, 2.0}}, batches=0, epochs=0)
    with pytest.raises(ValueError, match="batches must be >= 0, but got -1"):
        storage.add_metrics(trial_id, "training", {"loss": 1.0}, batches=-1, epochs=0)
