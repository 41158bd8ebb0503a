"""The Python API for results: `Experiment.load(id, storage=...)`, its trials, metrics, best trial and checkpoint."""

import sys
from pathlib import Path

import pytest
from real_experiments import ExperimentFolder

from hpt_core.results import Experiment, list_experiments


@pytest.fixture
def experiment(finished):
    with Experiment.load(finished.experiment_id, storage=finished.storage_url) as loaded:
        yield loaded


def test_an_experiment_and_its_trials(finished, experiment):
    assert (experiment.id, experiment.name, experiment.state) == (finished.experiment_id, "results", "COMPLETED")
    assert experiment.config["searcher"]["name"] == "grid" and experiment.metric == "val_loss"
    assert experiment.experiment_dir.is_dir() and experiment.progress == 1.0
    trials = experiment.trials()
    assert [trial.request_id for trial in trials] == [1, 2, 3, 4]
    for trial in trials:
        validations = finished.log("report", kind="validation", trial_id=trial.id)
        assert trial.latest_validation.value == validations[-1]["metrics"]["val_loss"]
        assert (trial.best_validation.batches, trial.best_validation.epochs) == (30, 3)
        assert trial.restarts == len(finished.log("start", trial_id=trial.id)) - 1
        assert (trial.state, trial.end_reason, trial.length_trained) == ("COMPLETED", "completed its length", 3)
        assert [checkpoint.epochs for checkpoint in trial.checkpoints] == [
            entry["epochs"] for entry in finished.log("checkpoint", trial_id=trial.id)]
        assert all(checkpoint.path.is_dir() for checkpoint in trial.checkpoints)
        assert trial.best_checkpoint == trial.latest_checkpoint == next(c for c in trial.checkpoints if c.batches == 30)
    assert experiment.trial(trials[2].id) == trials[2]


def test_metrics_as_plain_lists(finished, experiment):
    validations = experiment.metrics("validation")
    assert sorted((row["trial_id"], row["batches"], row["metrics"]["val_loss"]) for row in validations) == sorted(
        (entry["trial_id"], entry["batches"], entry["metrics"]["val_loss"])
        for entry in finished.log("report", kind="validation"))
    assert all(row["kind"] == "validation" for row in validations)
    trial = experiment.trials()[0]
    own = experiment.metrics(trial_id=trial.id)
    assert {row["kind"] for row in own} == {"training", "validation"} and {row["trial_id"] for row in own} == {trial.id}
    assert [row["metrics"] for row in own if row["kind"] == "training"] == [
        entry["metrics"] for entry in finished.log("report", kind="training", trial_id=trial.id)]
    assert all(row["request_id"] == trial.request_id for row in own)


def test_the_best_trial_and_its_checkpoint(experiment):
    trials = experiment.trials()
    lowest = min(trial.best_validation.value for trial in trials)
    best = experiment.best_trial()
    assert best.best_validation.value == lowest
    assert best.id == min(trial.id for trial in trials if trial.best_validation.value == lowest)
    assert best.id == experiment.describe()["best_trial"]
    checkpoint = experiment.best_checkpoint()
    assert checkpoint.validation["val_loss"] == lowest and checkpoint.path.is_dir()
    ties = [c for c in experiment.checkpoints() if c.validation and c.validation["val_loss"] == lowest]
    assert checkpoint == ties[0]  # the older among equals


def test_metrics_frame_has_a_column_per_metric(experiment):
    pytest.importorskip("pandas")
    frame = experiment.metrics_frame("training")
    assert list(frame.columns) == ["trial_id", "request_id", "kind", "batches", "epochs", "reported_at", "loss",
                                   "<b>odd name</b>"]
    assert len(frame) == len(experiment.metrics("training"))
    assert set(frame["kind"]) == {"training"}


def test_metrics_frame_without_pandas_says_what_to_do(experiment, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(ImportError, match=r"needs pandas, which hpt does not install: `pip install pandas`"):
        experiment.metrics_frame()


def test_the_default_store_and_list_experiments(finished, monkeypatch):
    monkeypatch.setenv("HPT_STORAGE", finished.storage_url)
    with Experiment.load(finished.experiment_id) as loaded:
        assert loaded.name == "results"
    assert [experiment.id for experiment in list_experiments()] == [finished.experiment_id]


def test_unknown_ids_are_lookup_errors(finished, experiment):
    with pytest.raises(LookupError, match="experiment 999 does not exist"):
        Experiment.load(999, storage=finished.storage_url)
    with pytest.raises(LookupError, match=f"experiment {experiment.id} has no trial 999"):
        experiment.trial(999)


def test_storage_must_be_a_url_a_storage_or_none():
    with pytest.raises(TypeError, match="storage must be a database URL, a Storage or None"):
        Experiment.load(1, storage=Path("hpt.db"))


def test_results_on_each_storage_backend(storage_url, tmp_path):
    run = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.01"}, storage_url=storage_url).run(
        {"name": "single", "max_length": {"epochs": 2}}, {"quality": 1.0}, checkpoint_policy="best", max_restarts=2,
        seed=1)
    with Experiment.load(run.experiment_id, storage=storage_url) as experiment:
        assert experiment.state == run.state == "COMPLETED"
        (trial,) = experiment.trials()
        assert trial.best_validation.value == pytest.approx(1 / 3)
        checkpoint = experiment.best_checkpoint()
        assert checkpoint.trial_id == trial.id and (checkpoint.path / "state.json").is_file()
        assert [row["batches"] for row in experiment.metrics("validation")] == [20]
