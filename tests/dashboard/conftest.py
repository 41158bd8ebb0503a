"""Shared fixtures of the dashboard's tests (API tests here, browser tests of the page alike).

Session-scoped, built once and read-only afterwards (except for the running experiment):

- `dashboard_site`: one SQLite storage under a temporary HPT_HOME holding REAL experiments, each run
  with `hpt experiment create` on the plain-Python trial in `model/trial.py` (a loss falling at a
  rate set by `lr`, a training and a validation report per epoch of 10 batches, a line per epoch in
  its log):
  - `asha_id`: a finished adaptive_asha search, one bracket of 2 rungs (1 and 4 epochs), 8 trials
    that checkpoint every epoch (garbage collection then deletes some of those checkpoints); its `lr`
    is a `log` hyperparameter (10^-1.3 to 10^-0.3);
  - `pbt_id`: a finished pbt search, population 4, 3 rounds of 1 epoch (children start from their
    parents' checkpoints);
  - `hostile_id`: a finished grid search (4 trials: lr 0.1 or 0.3 times both values of a categorical)
    whose experiment name (HOSTILE_NAME), a hyperparameter name (HOSTILE_HPARAM), one of its
    categorical values (HOSTILE_VALUE) and its searcher metric's name (HOSTILE_METRIC, reported by
    the trial) are markup that would run script if a page used it as HTML;
  - `running_id`: a random search started with `--detach` whose 2 trials take 1 s per epoch for
    hours: RUNNING for the whole session, cancelled (and its controller waited for) at the end.
  `dashboard_site.hpt(...)` runs the `hpt` command on that storage.
- `dashboard_url`: a real dashboard (uvicorn) over that storage on 127.0.0.1 on a free port, started
  with DASHBOARD_TOKEN (so pause/activate/cancel work with `Authorization: Bearer DASHBOARD_TOKEN`).
- `readonly_dashboard_url`: the same storage served without a token (write actions answer 403).
- `asha_experiment_id`, `pbt_experiment_id`, `hostile_experiment_id`, `running_experiment_id`: the ids.

The hostile strings, DASHBOARD_TOKEN, `DashboardSite` and `dashboard_experiments` live in dashboard_support.py
(`from dashboard_support import HOSTILE_HPARAM`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_support import (
    DASHBOARD_TOKEN,
    EXPERIMENT_TIMEOUT,
    HOSTILE_HPARAM,
    HOSTILE_METRIC,
    HOSTILE_NAME,
    HOSTILE_VALUE,
    MODEL_DIR,
    DashboardSite,
    dashboard_experiments,
)
from real_experiments import ExperimentFolder

from hpt_core.dashboard.server import DashboardServer
from hpt_core.runner import controller_alive

# conftest.py: not collected for doctests (it has none), since pytest would import it under the module name
# "conftest" that browser/conftest.py already holds by then.
collect_ignore_glob = ["model/*", "conftest.py"]


def _experiment_files(experiments: ExperimentFolder) -> dict[str, Path]:
    lr = {"type": "double", "minval": 0.05, "maxval": 0.5}
    return {
        "asha": experiments.write_file("asha", {
            "name": "adaptive_asha", "metric": "val_loss", "max_length": {"epochs": 4}, "max_trials": 8,
            "mode": "aggressive", "divisor": 4, "max_rungs": 2, "max_concurrent_trials": 2,
        }, {"lr": {"type": "log", "minval": -1.3, "maxval": -0.3, "base": 10.0}, "checkpoint_each_epoch": True},
            name="asha"),
        "pbt": experiments.write_file("pbt", {
            "name": "pbt", "metric": "val_loss", "population_size": 4, "num_rounds": 3,
            "length_per_round": {"epochs": 1}, "max_concurrent_trials": 2,
            "replace_function": {"truncate_fraction": 0.5},
            "explore_function": {"resample_probability": 0.5, "perturb_factor": 0.2},
        }, {"lr": lr, "optimizer": {"momentum": {"type": "double", "minval": 0.0, "maxval": 0.9}}}, name="pbt"),
        "hostile": experiments.write_file("hostile", {
            "name": "grid", "metric": HOSTILE_METRIC, "max_length": {"epochs": 2}, "max_concurrent_trials": 2,
        }, {"lr": {"type": "categorical", "vals": [0.1, 0.3]},
            HOSTILE_HPARAM: {"type": "categorical", "vals": [HOSTILE_VALUE, "plain"]},
            "report_as": HOSTILE_METRIC}, name=HOSTILE_NAME, description=f"described as {HOSTILE_NAME}"),
        "running": experiments.write_file("running", {
            "name": "random", "metric": "val_loss", "max_length": {"epochs": 100000}, "max_trials": 2,
            "max_concurrent_trials": 2,
        }, {"lr": lr, "epoch_seconds": 1.0}, name="running"),
    }


def _created_id(completed: subprocess.CompletedProcess[str]) -> int:
    """The id that `hpt experiment create` printed ("experiment N created; ...")."""
    for line in completed.stdout.splitlines():
        if line.startswith("experiment ") and " created" in line:
            return int(line.split()[1])
    raise AssertionError(f"hpt experiment create failed ({completed.returncode}):\n{completed.stdout}\n"
                         f"{completed.stderr}")


@pytest.fixture(scope="session")
def dashboard_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardSite]:
    experiments = dashboard_experiments(tmp_path_factory.mktemp("dashboard"))
    files = _experiment_files(experiments)
    running = experiments.hpt("experiment", "create", str(files["running"]), str(MODEL_DIR), "--detach", "--quiet",
                              timeout=EXPERIMENT_TIMEOUT)
    running_id = _created_id(running)
    try:
        finished = {
            name: experiments.start_hpt("experiment", "create", str(files[name]), str(MODEL_DIR), "--quiet",
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for name in ("asha", "pbt", "hostile")
        }
        ids = {}
        for name, process in finished.items():
            stdout, stderr = process.communicate(timeout=EXPERIMENT_TIMEOUT)
            ids[name] = _created_id(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
            assert process.returncode == 0, f"the {name} experiment did not complete:\n{stdout}\n{stderr}"
        yield DashboardSite(experiments, ids["asha"], ids["pbt"], ids["hostile"], running_id)
    finally:
        _cancel_and_wait(experiments, running_id)


def _cancel_and_wait(experiments: ExperimentFolder, experiment_id: int) -> None:
    """Cancel the experiment and wait for its controller to end (its trials checkpoint and exit); a controller
    still there after a minute is killed."""
    experiments.hpt("experiment", "cancel", str(experiment_id), timeout=60)
    with experiments.storage() as storage:
        deadline = time.monotonic() + 60
        while controller_alive(storage, experiment_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        if controller_alive(storage, experiment_id):
            os.killpg(storage.lease(experiment_id).pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def dashboard_url(dashboard_site: DashboardSite) -> Iterator[str]:
    with DashboardServer(dashboard_site.storage_url, token=DASHBOARD_TOKEN) as server:
        yield server.url


@pytest.fixture(scope="session")
def readonly_dashboard_url(dashboard_site: DashboardSite) -> Iterator[str]:
    with DashboardServer(dashboard_site.storage_url) as server:
        yield server.url


@pytest.fixture(scope="session")
def asha_experiment_id(dashboard_site: DashboardSite) -> int:
    return dashboard_site.asha_id


@pytest.fixture(scope="session")
def pbt_experiment_id(dashboard_site: DashboardSite) -> int:
    return dashboard_site.pbt_id


@pytest.fixture(scope="session")
def hostile_experiment_id(dashboard_site: DashboardSite) -> int:
    return dashboard_site.hostile_id


@pytest.fixture(scope="session")
def running_experiment_id(dashboard_site: DashboardSite) -> int:
    return dashboard_site.running_id
