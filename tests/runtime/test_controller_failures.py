"""A failing search method, or any failure of the controller, leaves the experiment PAUSED with a message that
names what failed; once mended, the experiment continues where it stopped, losing nothing it recorded."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parent / "model"
SEARCHERS_DIR = Path(__file__).parent / "searchers"


def hpt(home, *args, broken=False):
    env = {**os.environ, "HPT_HOME": str(home), "TRIAL_LOG": str(home / "trial-log.jsonl"), "EPOCH_SECONDS": "0.02",
           "PYTHONPATH": os.pathsep.join([str(SEARCHERS_DIR), os.environ.get("PYTHONPATH", "")])}
    env.pop("FLAKY_SEARCH_BROKEN", None)
    if broken:
        env["FLAKY_SEARCH_BROKEN"] = "1"
    return subprocess.run([sys.executable, "-m", "hpt_core.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_search_method_that_names_an_unknown_trial_pauses_the_experiment_and_resume_continues_it(tmp_path):
    config = {"entrypoint": f"{sys.executable} trial.py",
              "searcher": {"name": "custom", "class": "flaky_search:FlakySearch", "metric": "val_loss",
                           "max_length": {"epochs": 2}},
              "hyperparameters": {"quality": 1.0}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))

    failed = hpt(tmp_path, "experiment", "create", str(tmp_path / "exp.yaml"), str(MODEL_DIR), "--quiet",
                 broken=True)
    assert failed.returncode == 1
    assert "search method 'FlakySearch' asked for ValidateAfter(request_id=42, length=2) in reply to " \
           "on_validation_completed(1, 0.3333333333333333, 2), but request id 42 was never created" in failed.stderr
    assert "experiment 1 is PAUSED" in failed.stderr and "Traceback" not in failed.stderr
    storage = Storage(f"sqlite:///{tmp_path}/hpt.db")
    assert storage.get_experiment(1).state == "PAUSED"
    validations = [(m.epochs, m.metrics["val_loss"]) for m in storage.metrics(experiment_id=1, kind="validation")]
    assert validations == [(2, 1 / 3)]

    assert hpt(tmp_path, "experiment", "activate", "1").returncode == 0
    resumed = hpt(tmp_path, "experiment", "resume", "1", "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert storage.get_experiment(1).state == "COMPLETED"
    (trial,) = storage.list_trials(1)
    assert (trial.state, trial.length_done, trial.length_trained) == ("COMPLETED", 2, 2)
    assert [(m.epochs, m.metrics["val_loss"]) for m in storage.metrics(experiment_id=1, kind="validation")] == \
        validations  # heard again from storage, not trained again
