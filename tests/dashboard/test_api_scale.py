"""The API on an experiment of 10,000 trials (built with bulk inserts by benchmarks/dashboard_load.py, with fewer
metric rows than its benchmark): pages stay pages, the table sorts across them, long curves come downsampled.
How fast is the benchmark's business (docs/benchmarks.md), not this test's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from dashboard_support import get_json, http

from hpt_core.dashboard.server import DashboardServer
from hpt_core.storage import Storage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from dashboard_load import build_experiment  # noqa: E402

TRIALS = 10_000


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    storage_url = f"sqlite:///{tmp_path_factory.mktemp('large')}/hpt.db"
    built = build_experiment(storage_url, TRIALS, 40_000, run_searcher=False)
    with Storage(storage_url) as storage, DashboardServer(storage_url) as server:
        yield server.url, built.experiment_id, storage


def test_the_table_of_10000_trials_comes_in_pages_sorted_across_them(large):
    url, experiment_id, storage = large
    path = f"/api/v1/experiments/{experiment_id}/trials"
    first = get_json(url, path, sort="best_validation", limit=500)
    last = get_json(url, path, sort="best_validation", limit=500, offset=TRIALS - 500)
    assert first["total"] == last["total"] == TRIALS
    assert len(first["trials"]) == len(last["trials"]) == 500
    values = [row["best_validation"] for row in first["trials"] + last["trials"]]
    assert values == sorted(values)
    best_of_each: dict[int, float] = {}
    for record in storage.metrics(experiment_id=experiment_id, kind="validation"):
        best_of_each[record.trial_id] = min(record.metrics["val_loss"], best_of_each.get(record.trial_id, 1e9))
    assert (values[0], values[-1]) == (min(best_of_each.values()), max(best_of_each.values()))
    ids = {row["id"] for row in first["trials"]} | {row["id"] for row in last["trials"]}
    assert len(ids) == 1000
    assert http("GET", f"{url}api/v1/experiments/{experiment_id}/trials?limit=501").status == 400
    assert get_json(url, path, offset=TRIALS)["trials"] == []


def test_long_curves_are_cut_to_max_points_keeping_the_ends_and_extremes(large):
    url, experiment_id, storage = large
    curves = get_json(url, f"/api/v1/experiments/{experiment_id}/curves", metric="loss", kind="training", top=5,
                      max_points=6)
    assert len(curves["series"]) == 5
    for series in curves["series"]:
        reports = [[record.batches, record.metrics["loss"]]
                   for record in storage.metrics(trial_id=series["trial_id"], kind="training")]
        assert len(reports) > 6 and len(series["points"]) <= 6
        assert series["points"][0] == reports[0] and series["points"][-1] == reports[-1]
        values = [value for _, value in reports]
        kept = [value for _, value in series["points"]]
        assert min(values) in kept and max(values) in kept
        assert all(point in reports for point in series["points"])
    trial_id = curves["series"][0]["trial_id"]
    metrics = get_json(url, f"/api/v1/trials/{trial_id}/metrics", kind="training", max_points=5)["series"]["loss"]
    assert len(metrics) <= 5


def test_every_trial_is_in_the_hyperparameter_view(large):
    url, experiment_id, _ = large
    view = get_json(url, f"/api/v1/experiments/{experiment_id}/hparams")
    assert len(view["trials"]) == TRIALS
    assert {column["name"] for column in view["hyperparameters"]} == set(view["trials"][0]["hparams"])
