"""--config overrides and `hpt experiment delete`."""

import subprocess
from pathlib import Path

import pytest
import yaml
from real_experiments import RUNTIME_MODEL, ExperimentFolder

from hpt_core import ConfigError
from hpt_core.config import apply_overrides


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
    result = ExperimentFolder(tmp_path).hpt("config", "check", str(config), "--config", "searcher.max_trials=0",
                                            "--config", "searcher.max_trails=3")
    assert result.returncode == 2
    assert "searcher.max_trials: must be greater than or equal to 1 (got 0)" in result.stderr
    assert "did you mean 'max_trials'" in result.stderr


def test_delete_removes_every_file_and_row_of_the_experiment_and_nothing_of_another(tmp_path):
    experiments = ExperimentFolder(tmp_path)
    shared_checkpoints = tmp_path / "checkpoints"
    config = experiments.write_file("exp", {"name": "random", "max_length": 2, "max_trials": 2}, {"quality": 1.0},
                                    checkpoint_storage={"path": str(shared_checkpoints)})
    for _ in range(2):
        assert experiments.hpt("experiment", "create", str(config), str(RUNTIME_MODEL), "--quiet").returncode == 0
    storage = experiments.storage()
    kept_trials = storage.list_trials(2)
    kept_metrics = storage.metrics(experiment_id=2)
    kept_checkpoints = storage.checkpoints(experiment_id=2)
    assert all(Path(c.path).is_dir() for c in kept_checkpoints) and kept_metrics
    doomed_checkpoints = storage.checkpoints(experiment_id=1)
    assert doomed_checkpoints
    doomed, kept = storage.get_experiment(1), storage.get_experiment(2)

    refused = experiments.hpt("experiment", "delete", "1", stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    result = experiments.hpt("experiment", "delete", "1", "--yes")
    assert result.returncode == 0, result.stderr

    assert [e.id for e in storage.list_experiments()] == [2]
    assert storage.list_trials(1) == [] and storage.metrics(experiment_id=1) == []
    assert storage.checkpoints(experiment_id=1, include_deleted=True) == []
    assert storage.searcher_records(1) == []
    assert not Path(doomed.experiment_dir).exists() and not (shared_checkpoints / doomed.uuid).exists()
    assert all(not Path(c.path).exists() for c in doomed_checkpoints)
    assert storage.list_trials(2) == kept_trials and storage.metrics(experiment_id=2) == kept_metrics
    assert storage.checkpoints(experiment_id=2) == kept_checkpoints
    assert all(Path(c.path).is_dir() for c in kept_checkpoints) and Path(kept.experiment_dir).is_dir()
