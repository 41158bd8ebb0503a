"""The tensorboard logger, on real experiments, read back with TensorBoard's own reader and HParams plugin."""

import json
import logging
from pathlib import Path

import pytest
from real_experiments import ExperimentFolder
from tensorboard import context as tensorboard_context
from tensorboard.backend.event_processing import data_provider, event_accumulator, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

import hpt_core


def run_experiment(directory, hyperparameters, loggers=None, epochs=2):
    """A grid search of `epochs` epochs (of 0.01 s) of the runtime trial, seed 1, in `directory`."""
    fields = {"loggers": loggers} if loggers is not None else {}
    run = ExperimentFolder(directory, variables={"EPOCH_SECONDS": "0.01"}).run(
        {"name": "grid", "max_length": {"epochs": epochs}}, hyperparameters, seed=1, **fields)
    return run.storage, run.experiment_id, run.state


class HParamsView:
    """What TensorBoard's HParams dashboard asks its plugin for, over one log directory."""

    def __init__(self, logdir):
        multiplexer = plugin_event_multiplexer.EventMultiplexer()
        multiplexer.AddRunsFromDirectory(str(logdir))
        multiplexer.Reload()
        provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
        tb_context = base_plugin.TBContext(logdir=str(logdir), data_provider=provider)
        self.backend = backend_context.Context(tb_context)
        self.request = tensorboard_context.RequestContext()

    def experiment(self):
        return get_experiment.Handler(self.request, self.backend, "",
                                      api_pb2.GetExperimentRequest(include_metrics=True)).run()

    def session_groups(self):
        request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, include_metrics=True,
                                                   allowed_statuses=api_pb2.Status.values())
        return list_session_groups.Handler(self.request, self.backend, "", request).run().session_groups


def scalars(run_dir, tag):
    accumulator = event_accumulator.EventAccumulator(str(run_dir))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_each_trial_is_a_run_with_its_hparams_and_metrics_in_the_hparams_view(tmp_path):
    storage, experiment_id, state = run_experiment(tmp_path, {
        "quality": {"type": "categorical", "vals": [0.5, 2.0]},
        "optimizer": {"kind": "sgd", "nesterov": True},
    }, loggers={"tensorboard": {}})
    assert state == "COMPLETED"
    logdir = Path(storage.get_experiment(experiment_id).experiment_dir) / "tensorboard"
    trials = storage.list_trials(experiment_id)

    view = HParamsView(logdir)
    experiment = view.experiment()
    assert {info.name for info in experiment.hparam_infos} == {"quality", "optimizer.kind", "optimizer.nesterov"}
    assert {(info.name.group, info.name.tag) for info in experiment.metric_infos} == {
        ("training", "loss"), ("training", "<b>odd name</b>"), ("validation", "val_loss"), ("validation", "accuracy")}

    groups = {group.name: group for group in view.session_groups()}
    assert set(groups) == {f"trial_{trial.id}" for trial in trials}
    for trial in trials:
        group = groups[f"trial_{trial.id}"]
        assert group.hparams["quality"].number_value == trial.hparams["quality"]
        assert group.hparams["optimizer.kind"].string_value == "sgd"
        assert group.hparams["optimizer.nesterov"].bool_value is True
        (session,) = group.sessions
        assert session.status == api_pb2.STATUS_SUCCESS
        last_validation = storage.metrics(trial_id=trial.id, kind="validation")[-1].metrics
        metric_values = {(value.name.group, value.name.tag): value.value for value in session.metric_values}
        assert metric_values[("validation", "val_loss")] == pytest.approx(last_validation["val_loss"])

        stored = [(record.batches, record.metrics["loss"]) for record in storage.metrics(trial_id=trial.id,
                                                                                         kind="training")]
        logged = scalars(logdir / f"trial_{trial.id}" / "training", "loss")
        assert [step for step, _ in logged] == [batches for batches, _ in stored] == [10, 20]
        assert [value for _, value in logged] == pytest.approx([loss for _, loss in stored])


def test_a_trial_that_errors_ends_its_session_as_a_failure(tmp_path):
    storage, experiment_id, state = run_experiment(
        tmp_path, {"behaviour": {"type": "categorical", "vals": ["nan", "normal"]}}, loggers={"tensorboard": {}})
    assert state == "COMPLETED"
    logdir = Path(storage.get_experiment(experiment_id).experiment_dir) / "tensorboard"
    status = {group.hparams["behaviour"].string_value: group.sessions[0].status
              for group in HParamsView(logdir).session_groups()}
    assert status == {"nan": api_pb2.STATUS_FAILURE, "normal": api_pb2.STATUS_SUCCESS}


def test_path_holds_one_folder_per_experiment_named_by_its_uuid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage, experiment_id, state = run_experiment(tmp_path, {"quality": 1.0}, loggers={"tensorboard": {"path": "tb"}},
                                                   epochs=1)
    assert state == "COMPLETED"
    (trial,) = storage.list_trials(experiment_id)
    experiment = storage.get_experiment(experiment_id)
    assert scalars(tmp_path / "tb" / experiment.uuid / f"trial_{trial.id}" / "validation", "val_loss")
    assert not (Path(experiment.experiment_dir) / "tensorboard").exists()


def test_experiments_of_two_storages_sharing_a_path_keep_their_own_runs(tmp_path):
    shared = tmp_path / "tb"
    runs = [run_experiment(tmp_path / home, {"quality": quality}, loggers={"tensorboard": {"path": str(shared)}},
                           epochs=1) for home, quality in (("first", 1.0), ("second", 2.0))]
    assert [experiment_id for _, experiment_id, _ in runs] == [1, 1]
    for storage, experiment_id, state in runs:
        assert state == "COMPLETED"
        experiment = storage.get_experiment(experiment_id)
        (trial,) = storage.list_trials(experiment_id)
        (group,) = HParamsView(shared / experiment.uuid).session_groups()
        assert group.hparams["quality"].number_value == trial.hparams["quality"]


def test_the_logger_is_off_unless_the_experiment_file_enables_it(tmp_path):
    storage, experiment_id, state = run_experiment(tmp_path, {"quality": 1.0}, epochs=1)
    assert state == "COMPLETED"
    assert not (Path(storage.get_experiment(experiment_id).experiment_dir) / "tensorboard").exists()


def test_a_logger_that_fails_leaves_the_experiment_completed(tmp_path, caplog):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("TensorBoard cannot write under a file")
    with caplog.at_level(logging.ERROR, logger="hpt_core.plugins"):
        storage, experiment_id, state = run_experiment(
            tmp_path, {"quality": {"type": "categorical", "vals": [0.5, 2.0]}},
            loggers={"tensorboard": {"path": str(not_a_folder)}})
    assert state == "COMPLETED"
    assert [trial.state for trial in storage.list_trials(experiment_id)] == ["COMPLETED", "COMPLETED"]
    failures = [record.getMessage() for record in caplog.records]
    assert f"the hpt plugin 'tensorboard logger of experiment {experiment_id}' failed in hpt_trial_started" \
        in failures
    assert any("failed in hpt_metrics_reported" in failure for failure in failures)


METRIC_NAMES = ["val.loss", "val/loss", 'a"b', "it's", "x[0]", "$cost", "a b", "学习率"]
"""Dots, slashes, quotes, brackets, `$`, spaces and non-ASCII: what frameworks log; the first is the searcher's."""


def test_any_metric_name_round_trips_through_tensorboard_describe_results_and_export(tmp_path):
    run = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.01", "METRIC_NAMES": json.dumps(METRIC_NAMES)}).run(
        {"name": "grid", "metric": "val.loss", "max_length": {"epochs": 2}},
        {"quality": {"type": "categorical", "vals": [0.5, 2.0]}}, seed=1, loggers={"tensorboard": {}})
    assert run.state == "COMPLETED"
    logdir = Path(run.storage.get_experiment(run.experiment_id).experiment_dir) / "tensorboard"
    for trial in run.trials():
        for kind in ("training", "validation"):
            stored = run.metrics(trial, kind)
            for name in METRIC_NAMES:
                assert scalars(logdir / f"trial_{trial.id}" / kind, name) == \
                    [(record.batches, pytest.approx(record.metrics[name])) for record in stored], (kind, name)

    described = json.loads(run.hpt("experiment", "describe", str(run.experiment_id), "--json").stdout)
    best = run.trial(quality=2.0)
    best_loss = run.metrics(best, "validation")[-1].metrics["val.loss"]
    assert described["best_trial"] == best.id
    assert {trial["id"]: trial["best_validation"]["value"] for trial in described["trials"]}[best.id] == \
        pytest.approx(best_loss)
    shown = run.hpt("trial", "describe", str(best.id), variables={"COLUMNS": "250"}).stdout
    assert all(name in shown for name in METRIC_NAMES), shown

    with hpt_core.Experiment.load(run.experiment_id, run.storage_url) as experiment:
        reported = experiment.metrics("validation", trial_id=best.id)[-1]["metrics"]
    reported_values = {name: reported[name] for name in METRIC_NAMES}
    assert reported_values == {name: pytest.approx(best_loss + index) for index, name in enumerate(METRIC_NAMES)}
    exported = run.hpt("trial", "download", str(best.id), "--best", "-o", str(tmp_path / "export"))
    assert exported.returncode == 0, exported.stderr
    metadata = json.loads((tmp_path / "export" / "hpt_export.json").read_text())
    assert {name: metadata["validation"][name] for name in METRIC_NAMES} == reported_values
