"""`log` hyperparameters are drawn on log axes: the parallel coordinates place log10 of the value (plotly's parcoords
has no log axis) with ticks labelled in real values, and the scatter uses a log x axis."""

from __future__ import annotations

import math

import pytest
from dashboard_support import EXPERIMENT_TIMEOUT, MODEL_DIR, dashboard_experiments

import browser_expected as expected
from hpt_core.dashboard.server import DashboardServer
from hpt_core.storage import Storage

WEIGHT_DECAY = {"type": "log", "minval": -5, "maxval": -2, "base": 10}


@pytest.fixture(scope="module")
def log_site(tmp_path_factory):
    """A finished random search of 3 one-epoch trials over a log and a double hyperparameter, and its dashboard."""
    experiments = dashboard_experiments(tmp_path_factory.mktemp("log-axes"))
    storage_url = experiments.storage_url
    path = experiments.write_file("log-axes", {
        "name": "random", "metric": "val_loss", "max_length": {"epochs": 1}, "max_trials": 3,
        "max_concurrent_trials": 3,
    }, {"lr": {"type": "double", "minval": 0.05, "maxval": 0.5}, "weight_decay": WEIGHT_DECAY}, name="log-axes")
    completed = experiments.hpt("experiment", "create", str(path), str(MODEL_DIR), "--quiet",
                                timeout=EXPERIMENT_TIMEOUT)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with experiments.storage() as storage:
        (experiment,) = storage.list_experiments()
    with DashboardServer(storage_url) as server:
        yield server.url, storage_url, experiment.id


def test_log_hyperparameters_are_drawn_on_log_axes_labelled_in_real_values(open_page, log_site):
    url, storage_url, experiment_id = log_site
    watched = open_page(url)
    watched.open(f"#/experiments/{experiment_id}")
    with Storage(storage_url) as storage:
        hparams = expected.trial_values(storage, experiment_id)
        trial_ids = sorted(expected.best_by_trial(storage, experiment_id, "val_loss"))
    assert len(trial_ids) == 3

    (parcoords,) = watched.graph("[data-testid=parcoords-chart]")["data"]
    dimension = next(dimension for dimension in parcoords["dimensions"] if dimension["label"] == "weight_decay")
    assert dimension["values"] == pytest.approx([math.log10(hparams[trial_id]["weight_decay"]) for trial_id in trial_ids])
    assert dimension["range"] == pytest.approx([-5, -2])  # the searched range, 1e-5 to 1e-2
    assert dimension["tickvals"] == pytest.approx([-5, -4, -3, -2])
    assert [float(text) for text in dimension["ticktext"]] == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2])
    linear = next(dimension for dimension in parcoords["dimensions"] if dimension["label"] == "lr")
    assert linear["values"] == pytest.approx([hparams[trial_id]["lr"] for trial_id in trial_ids])

    scatter = watched.graph("[data-testid=hp-scatter][data-hp='weight_decay']")
    assert scatter["layout"]["xaxis"]["type"] == "log"
    assert scatter["data"][0]["x"] == pytest.approx([hparams[trial_id]["weight_decay"] for trial_id in trial_ids])
    assert watched.problems() == []
