"""A real finished experiment to read results from (run once per session, read-only afterwards).

Grid search over `quality` (0.5, 2.0) and `behaviour` (normal, die_once): 4 trials of 3 epochs (10
batches each) that checkpoint every epoch and, with `checkpoint_policy: all`, after every validation;
the die_once trials are killed at epoch 2 of their first attempt and restart from their epoch-1
checkpoint. The trial script (tests/runtime/model/trial.py) writes its own log of every report and
checkpoint (`finished.log()`); `finished.hpt(...)` runs the `hpt` command on the experiment's storage.
"""

from __future__ import annotations

import pytest
from real_experiments import ExperimentFolder, ExperimentRun


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> ExperimentRun:
    experiments = ExperimentFolder(tmp_path_factory.mktemp("results"), variables={"EPOCH_SECONDS": "0.01"})
    return experiments.run(
        {"name": "grid", "max_length": {"epochs": 3}, "max_concurrent_trials": 2},
        {"quality": {"type": "categorical", "vals": [0.5, 2.0]},
         "behaviour": {"type": "categorical", "vals": ["normal", "die_once"]},
         "checkpoint_each_epoch": True},
        name="results", max_restarts=2, seed=1, checkpoint_policy="all",
        checkpoint_storage={"save_trial_latest": 100})  # keep every checkpoint: the tests read them all
