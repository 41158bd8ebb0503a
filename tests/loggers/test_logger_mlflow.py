"""The mlflow logger, on real experiments, read back from a real local MLflow tracking store (SQLite)."""

import pytest
from mlflow import MlflowClient
from real_experiments import ExperimentFolder

import hpt_core
from hpt_core.loggers.mlflow import MLflowLogger, MLflowOptions


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One tracking store for the module (making its tables takes seconds); each test logs to its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


def run_experiment(directory, hyperparameters, loggers, **fields):
    """A grid search of 2 epochs (of 0.01 s) of the runtime trial, seed 1, in `directory`."""
    run = ExperimentFolder(directory, variables={"EPOCH_SECONDS": "0.01"}).run(
        {"name": "grid", "max_length": {"epochs": 2}}, hyperparameters, seed=1, loggers=loggers, **fields)
    return run.storage, run.experiment_id, run.state


def runs_of(client, experiment_name):
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = {int(run.data.tags["hpt.trial_id"]): run for run in runs if run is not parent}
    return parent, children


def test_the_experiment_is_a_run_and_each_trial_a_nested_run_with_its_hparams_and_metrics(tmp_path, tracking_uri):
    storage, experiment_id, state = run_experiment(
        tmp_path, {"quality": {"type": "categorical", "vals": [0.5, 2.0]}, "optimizer": {"kind": "sgd"}},
        {"mlflow": {"tracking_uri": tracking_uri, "experiment_name": "digits"}})
    assert state == "COMPLETED"
    client = MlflowClient(tracking_uri=tracking_uri)
    parent, children = runs_of(client, "digits")

    assert parent.info.status == "FINISHED"
    assert parent.data.tags["hpt.experiment_id"] == str(experiment_id)
    assert parent.data.params["searcher.name"] == "grid" and parent.data.params["searcher.metric"] == "val_loss"
    trials = storage.list_trials(experiment_id)
    assert set(children) == {trial.id for trial in trials}
    for trial in trials:
        run = children[trial.id]
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["hpt.end_reason"] == "completed its length"
        assert run.data.params == {"quality": str(trial.hparams["quality"]), "optimizer.kind": "sgd"}
        history = client.get_metric_history(run.info.run_id, "validation/val_loss")
        stored = [(record.batches, record.metrics["val_loss"])
                  for record in storage.metrics(trial_id=trial.id, kind="validation")]
        assert [(metric.step, metric.value) for metric in history] == pytest.approx(stored)
        assert [metric.step for metric in client.get_metric_history(run.info.run_id, "training/loss")] == [10, 20]
        assert set(run.data.metrics) == {"training/loss", "training/_b_odd name_/b_", "validation/val_loss",
                                         "validation/accuracy"}


def test_the_experiment_name_defaults_to_the_experiments_name(tmp_path, tracking_uri):
    _, _, state = run_experiment(tmp_path, {"quality": 1.0}, {"mlflow": {"tracking_uri": tracking_uri}},
                                 name="my search")
    assert state == "COMPLETED"
    parent, children = runs_of(MlflowClient(tracking_uri=tracking_uri), "my search")
    assert parent.info.status == "FINISHED" and len(children) == 1


def test_trials_that_error_or_are_cancelled_end_their_runs_failed_or_killed(tmp_path, tracking_uri):
    storage, experiment_id, state = run_experiment(
        tmp_path, {"behaviour": {"type": "categorical", "vals": ["nan", "invalid", "normal"]}},
        {"mlflow": {"tracking_uri": tracking_uri, "experiment_name": "faults"}})
    assert state == "COMPLETED"
    _, children = runs_of(MlflowClient(tracking_uri=tracking_uri), "faults")
    status = {trial.hparams["behaviour"]: children[trial.id].info.status
              for trial in storage.list_trials(experiment_id)}
    assert status == {"nan": "FAILED", "invalid": "KILLED", "normal": "FINISHED"}


def test_after_a_resume_the_logger_goes_on_in_the_same_runs(tracking_uri, tmp_path):
    config = hpt_core.load_config({"name": "resumed", "searcher": {"name": "single", "metric": "val_loss",
                                                                    "max_length": 4}})
    experiment_dir = tmp_path / "experiment"
    experiment_dir.mkdir()
    options = MLflowOptions(tracking_uri=tracking_uri)

    before_the_crash = MLflowLogger(7, options)
    before_the_crash.hpt_experiment_started(experiment_id=7, config=config, experiment_dir=str(experiment_dir))
    before_the_crash.hpt_trial_started(experiment_id=7, trial_id=3, request_id=1, hparams={"lr": 0.1})
    before_the_crash.hpt_metrics_reported(experiment_id=7, trial_id=3, kind="validation", metrics={"val_loss": 0.5},
                                          batches=2, epochs=0)

    after_the_resume = MLflowLogger(7, options)
    after_the_resume.hpt_experiment_started(experiment_id=7, config=config, experiment_dir=str(experiment_dir))
    after_the_resume.hpt_trial_started(experiment_id=7, trial_id=3, request_id=1, hparams={"lr": 0.1})
    after_the_resume.hpt_metrics_reported(experiment_id=7, trial_id=3, kind="validation", metrics={"val_loss": 0.25},
                                          batches=4, epochs=0)
    after_the_resume.hpt_trial_ended(experiment_id=7, trial_id=3, state="COMPLETED", reason="completed its length")
    after_the_resume.hpt_experiment_ended(experiment_id=7, state="COMPLETED")

    client = MlflowClient(tracking_uri=tracking_uri)
    parent, children = runs_of(client, "resumed")
    assert parent.info.run_id == before_the_crash.run_id == after_the_resume.run_id
    history = client.get_metric_history(children[3].info.run_id, "validation/val_loss")
    assert [(metric.step, metric.value) for metric in history] == [(2, 0.5), (4, 0.25)]
    assert (parent.info.status, children[3].info.status) == ("FINISHED", "FINISHED")


def test_events_of_another_experiment_are_ignored(tracking_uri, tmp_path):
    logger = MLflowLogger(1, MLflowOptions(tracking_uri=tracking_uri))
    logger.hpt_experiment_started(experiment_id=2, config=None, experiment_dir=str(tmp_path))
    logger.hpt_trial_started(experiment_id=2, trial_id=1, request_id=1, hparams={})
    assert logger.run_id is None and not (tmp_path / "mlflow_run_id").exists()


@pytest.mark.parametrize("uri", ["file:/tmp/mlruns", "./mlruns"])
def test_a_folder_as_tracking_store_is_one_line_saying_what_to_use_instead(uri, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(hpt_core.ConfigError) as raised:
        hpt_core.load_config({"searcher": {"name": "single", "metric": "loss", "max_length": 1},
                              "loggers": {"mlflow": {"tracking_uri": uri}}})
    (problem,) = raised.value.problems
    assert problem.path == "loggers.mlflow.tracking_uri" and problem.value == uri
    assert "use a database such as `sqlite:///mlflow.db`" in problem.message
