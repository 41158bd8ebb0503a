"""A failing search method, or any failure of the controller, leaves the experiment PAUSED with a message that
names what failed; once mended, the experiment continues where it stopped, losing nothing it recorded."""

import os
from pathlib import Path

from real_experiments import ExperimentFolder

SEARCHERS_DIR = Path(__file__).parent / "searchers"


def test_a_search_method_that_names_an_unknown_trial_pauses_the_experiment_and_resume_continues_it(tmp_path):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.02"})
    path = experiments.write_file("exp", {"name": "custom", "class": "flaky_search:FlakySearch",
                                          "max_length": {"epochs": 2}}, {"quality": 1.0})
    importable = {"PYTHONPATH": os.pathsep.join([str(SEARCHERS_DIR), os.environ.get("PYTHONPATH", "")])}

    failed = experiments.hpt("experiment", "create", str(path), str(experiments.model_dir), "--quiet",
                             variables={**importable, "FLAKY_SEARCH_BROKEN": "1"})
    assert failed.returncode == 1
    assert "search method 'FlakySearch' asked for ValidateAfter(request_id=42, length=2) in reply to " \
           "on_validation_completed(1, 0.3333333333333333, 2), but request id 42 was never created" in failed.stderr
    assert failed.stderr.count("experiment 1 is PAUSED") == 1 and "Traceback" not in failed.stderr
    storage = experiments.storage()
    assert storage.get_experiment(1).state == "PAUSED"
    assert [trial.state for trial in storage.list_trials(1)] == ["PAUSED"]  # stopped: not RUNNING
    validations = [(m.epochs, m.metrics["val_loss"]) for m in storage.metrics(experiment_id=1, kind="validation")]
    assert validations == [(2, 1 / 3)]

    assert experiments.hpt("experiment", "activate", "1").returncode == 0
    resumed = experiments.hpt("experiment", "resume", "1", "--quiet", variables=importable)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert storage.get_experiment(1).state == "COMPLETED"
    (trial,) = storage.list_trials(1)
    assert (trial.state, trial.length_done, trial.length_trained) == ("COMPLETED", 2, 2)
    assert [(m.epochs, m.metrics["val_loss"]) for m in storage.metrics(experiment_id=1, kind="validation")] == \
        validations  # heard again from storage, not trained again
