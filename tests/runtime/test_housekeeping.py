"""--config overrides and `hpt experiment delete`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpt_core import ConfigError
from hpt_core.config import apply_overrides
from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parent / "model"


def hpt(home, *args, stdin=None):
    env = {**os.environ, "HPT_HOME": str(home), "TRIAL_LOG": str(home / "log.jsonl")}
    return subprocess.run([sys.executable, "-m", "hpt_core.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, stdin=stdin)


def test_overrides_set_dotted_fields_with_yaml_values():
    data = {"searcher": {"name": "random", "max_trials": 4}, "hyperparameters": {"lr": 0.1}}
    result = apply_overrides(data, ["searcher.max_trials=8", "hyperparameters.lr={type: log, minval: -3, maxval: -1}",
                                    "environment.variables.MODE=fast", "description="])
    assert result["searcher"] == {"name": "random", "max_trials": 8}
    assert result["hyperparameters"]["lr"] == {"type": "log", "minval": -3, "maxval": -1}
    assert result["environment"] == {"variables": {"MODE": "fast"}} and result["description"] == ""
    assert data["searcher"]["max_trials"] == 4  # the original is untouched


@pytest.mark.parametrize("assignment", ["searcher", "=3", "searcher..name=x"])
def test_malformed_overrides_are_errors(assignment):
    with pytest.raises(ConfigError) as caught:
        apply_overrides({}, [assignment])
    assert caught.value.problems[0].path == "--config"


def test_overrides_are_validated_like_the_file(tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({"entrypoint": "true", "searcher": {"name": "random", "metric": "m",
                                      "max_length": 2, "max_trials": 2}, "hyperparameters": {"x": 1}}))
    result = hpt(tmp_path, "config", "check", str(config), "--config", "searcher.max_trials=0",
                 "--config", "searcher.max_trails=3")
    assert result.returncode == 2
    assert "searcher.max_trials: must be greater than or equal to 1 (got 0)" in result.stderr
    assert "did you mean 'max_trials'" in result.stderr


def test_delete_removes_every_file_and_row_of_the_experiment_and_nothing_of_another(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shared_checkpoints = tmp_path / "checkpoints"
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "entrypoint": f"{sys.executable} trial.py", "checkpoint_storage": {"path": str(shared_checkpoints)},
        "searcher": {"name": "random", "metric": "val_loss", "max_length": 2, "max_trials": 2},
        "hyperparameters": {"quality": 1.0}}))
    for _ in range(2):
        assert hpt(home, "experiment", "create", str(config), str(MODEL_DIR), "--quiet").returncode == 0
    storage = Storage(f"sqlite:///{home}/hpt.db")
    kept_trials = storage.list_trials(2)
    kept_metrics = storage.metrics(experiment_id=2)
    kept_checkpoints = storage.checkpoints(experiment_id=2)
    assert all(Path(c.path).is_dir() for c in kept_checkpoints) and kept_metrics
    doomed_checkpoints = storage.checkpoints(experiment_id=1)
    assert doomed_checkpoints

    refused = hpt(home, "experiment", "delete", "1", stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    result = hpt(home, "experiment", "delete", "1", "--yes")
    assert result.returncode == 0, result.stderr

    assert [e.id for e in storage.list_experiments()] == [2]
    assert storage.list_trials(1) == [] and storage.metrics(experiment_id=1) == []
    assert storage.checkpoints(experiment_id=1, include_deleted=True) == []
    assert storage.searcher_records(1) == []
    assert not (home / "experiments" / "1").exists() and not (shared_checkpoints / "1").exists()
    assert all(not Path(c.path).exists() for c in doomed_checkpoints)
    assert storage.list_trials(2) == kept_trials and storage.metrics(experiment_id=2) == kept_metrics
    assert storage.checkpoints(experiment_id=2) == kept_checkpoints
    assert all(Path(c.path).is_dir() for c in kept_checkpoints) and (home / "experiments" / "2").is_dir()
