"""Any metric name a framework can log works in the dashboard's API, on SQLite and PostgreSQL; ids no database
column can hold are 404."""

from __future__ import annotations

import pytest
from dashboard_support import get_json, http

from hpt_core.dashboard.server import DashboardServer
from hpt_core.runner import STATE_ACTIONS
from hpt_core.storage import Storage

NAMES = ["val.loss", 'a"b', "x[0]", "$cost", "学习率", "val/loss", "a b", "it's", "a\\b", "a->b"]
"""Dots, quotes, brackets, `$`, non-ASCII, slashes, spaces: each once the searcher metric."""


@pytest.fixture
def served(storage_url):
    """One experiment per name, its searcher metric that name; two trials each report every name."""
    with Storage(storage_url) as storage:
        experiments = {}
        for name in NAMES:
            experiment_id = storage.create_experiment(
                name=name, config={"searcher": {"name": "random", "metric": name}}, model_dir=".", seed=0, secret="s")
            for request_id, offset in [(1, 0.0), (2, 0.5)]:
                trial_id = storage.create_trial(experiment_id, request_id=request_id, hparams={"lr": 0.1}, seed=1)
                for batches in (10, 20):
                    metrics = {other: NAMES.index(other) + offset + batches / 100 for other in NAMES}
                    storage.add_metrics(trial_id, "validation", {**metrics, "val": {"loss": 99}}, batches=batches,
                                        epochs=1)
                    storage.add_metrics(trial_id, "training", metrics, batches=batches, epochs=1)
            experiments[name] = experiment_id
    with DashboardServer(storage_url) as server:
        yield server.url, experiments


def test_every_name_reads_its_own_values_in_every_view(served):
    url, experiments = served
    listed = {row["id"]: row for row in get_json(url, "/api/v1/experiments")["experiments"]}
    for name, experiment_id in experiments.items():
        best = NAMES.index(name) + 0.1  # smaller is better: the first trial at 10 batches
        assert listed[experiment_id]["best_metric"] == pytest.approx(best), name
        detail = get_json(url, f"/api/v1/experiments/{experiment_id}")
        assert detail["best_metric"] == pytest.approx(best) and name in detail["validation_metrics"], name
        points = get_json(url, f"/api/v1/experiments/{experiment_id}/best-over-time")["points"]
        assert [point["value"] for point in points] == [pytest.approx(best)], name
        page = get_json(url, f"/api/v1/experiments/{experiment_id}/trials")["trials"]
        assert [row["best_validation"] for row in page] == [pytest.approx(best), pytest.approx(best + 0.5)], name
        for kind in ("validation", "training"):
            curves = get_json(url, f"/api/v1/experiments/{experiment_id}/curves", metric=name, kind=kind)
            values = [point[1] for curve in curves["series"] for point in curve["points"]]
            assert sorted(values) == pytest.approx(sorted([best, best + 0.1, best + 0.5, best + 0.6])), (name, kind)
        trial_id = page[0]["id"]
        assert name in get_json(url, f"/api/v1/trials/{trial_id}")["validation_metrics"]
        series = get_json(url, f"/api/v1/trials/{trial_id}/metrics")["series"]
        assert [value for _, value in series[name]] == pytest.approx([best, best + 0.1]), name


@pytest.mark.parametrize("too_large", [2**31, 2**63, 2**70])
def test_an_id_no_database_column_can_hold_is_404_on_every_endpoint(served, too_large):
    url, _ = served
    for method, path in [
        ("GET", "/api/v1/experiments/{}"), ("GET", "/api/v1/experiments/{}/best-over-time"),
        ("GET", "/api/v1/experiments/{}/trials"), ("GET", "/api/v1/experiments/{}/curves"),
        ("GET", "/api/v1/experiments/{}/hparams"), ("GET", "/api/v1/experiments/{}/searcher-view"),
        ("GET", "/api/v1/experiments/{}/best-checkpoint"), ("GET", "/api/v1/trials/{}"),
        ("GET", "/api/v1/trials/{}/metrics"), ("GET", "/api/v1/trials/{}/log"),
    ]:
        reply = http(method, url.rstrip("/") + path.format(too_large))
        assert reply.status == 404 and str(too_large) in reply.json()["detail"], (path, reply.status, reply.body)


def test_an_oversized_id_is_404_for_actions_and_downloads_too(storage_url):
    with DashboardServer(storage_url, token="the-token") as server:
        base = server.url.rstrip("/")
        for action in STATE_ACTIONS:
            reply = http("POST", f"{base}/api/v1/experiments/{2**70}/{action}", token="the-token")
            assert reply.status == 404 and str(2**70) in reply.json()["detail"], (action, reply.status, reply.body)
        reply = http("GET", f"{base}/api/v1/checkpoints/{'9' * 5000}/download", token="the-token")
        assert reply.status == 404, (reply.status, reply.body)
