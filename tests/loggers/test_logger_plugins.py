"""Loggers are plugins: registered through `hpt_loggers`, enabled and validated in the experiment file,
and never able to stop an experiment."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hpt_core
from hpt_core.plugins import loggers

MODEL_DIR = Path(__file__).parents[1] / "runtime" / "model"
SEARCHER = {"name": "grid", "metric": "val_loss", "max_length": {"epochs": 2}}

EVENT_LOGGER_PLUGIN = '''
"""An installed third-party logger: it writes every event it sees to $EVENTS_LOG, then raises."""

import json
import os

from pydantic import Field

from hpt_core import hookimpl
from hpt_core.config import LoggerOptions
from hpt_core.loggers import Logger


class EventLogOptions(LoggerOptions):
    label: str = Field(default="events")


class EventLog(Logger):
    name = "event_log"
    options_model = EventLogOptions

    def _record(self, experiment_id, event, **fields):
        if not self.observes(experiment_id):
            return
        with open(os.environ["EVENTS_LOG"], "a") as log:
            log.write(json.dumps({"label": self.options.label, "event": event, **fields}) + "\\n")
        raise RuntimeError(f"this logger breaks after every {event}")

    @hookimpl
    def hpt_experiment_started(self, experiment_id, config, experiment_dir):
        self._record(experiment_id, "experiment_started", metric=config.searcher.metric)

    @hookimpl
    def hpt_trial_started(self, experiment_id, trial_id, hparams):
        self._record(experiment_id, "trial_started", trial_id=trial_id, hparams=hparams)

    @hookimpl
    def hpt_metrics_reported(self, experiment_id, trial_id, kind, metrics, batches):
        self._record(experiment_id, "metrics_reported", trial_id=trial_id, kind=kind, batches=batches)

    @hookimpl
    def hpt_trial_ended(self, experiment_id, trial_id, state):
        self._record(experiment_id, "trial_ended", trial_id=trial_id, state=state)

    @hookimpl
    def hpt_experiment_ended(self, experiment_id, state):
        self._record(experiment_id, "experiment_ended", state=state)


class Unstartable(Logger):
    name = "unstartable"

    def __init__(self, experiment_id, options):
        raise ImportError("the unstartable logger needs a library that is not installed")


@hookimpl
def hpt_loggers():
    return [EventLog, Unstartable]
'''


def install_plugin(directory):
    """Lay out the plugin as an installed distribution whose entry point is in group `hpt`."""
    (directory / "hpt_event_log.py").write_text(EVENT_LOGGER_PLUGIN)
    dist_info = directory / "hpt_event_log-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: hpt-event-log\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[hpt]\nevent_log = hpt_event_log\n")


def test_the_builtin_loggers_register_through_the_hook():
    assert {"tensorboard", "mlflow"} <= set(loggers())


def test_an_unknown_logger_gets_a_did_you_mean_listing_the_registered_ones():
    with pytest.raises(hpt_core.ConfigError) as caught:
        hpt_core.load_config({"searcher": SEARCHER, "loggers": {"tensorbord": {}}})
    (problem,) = caught.value.problems
    assert problem.path == "loggers.tensorbord"
    assert "mlflow" in problem.message and "tensorboard" in problem.message
    assert "did you mean 'tensorboard'?" in problem.message


def test_each_logger_validates_its_own_options():
    with pytest.raises(hpt_core.ConfigError) as caught:
        hpt_core.load_config({"searcher": SEARCHER, "loggers": {
            "tensorboard": {"path": 3}, "mlflow": {"tracking_url": "sqlite:///mlflow.db"}}})
    problems = {problem.path: problem.message for problem in caught.value.problems}
    assert problems["loggers.tensorboard.path"] == "must be a string"
    assert "did you mean 'tracking_uri'?" in problems["loggers.mlflow.tracking_url"]


def test_loggers_are_off_unless_named_and_named_ones_take_their_defaults():
    assert hpt_core.load_config({"searcher": SEARCHER}).loggers == {}
    config = hpt_core.load_config("searcher: {name: single, metric: val_loss, max_length: 1}\n"
                                  "loggers:\n  tensorboard:\n")
    assert config.loggers["tensorboard"].path is None
    assert hpt_core.load_config(config.to_dict()).loggers == config.loggers


def test_an_installed_logger_sees_the_experiment_and_when_it_raises_the_experiment_completes(tmp_path):
    install_plugin(tmp_path)
    events_log = tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
           "EVENTS_LOG": str(events_log), "HPT_HOME": str(tmp_path / "home"),
           "TRIAL_LOG": str(tmp_path / "trial-log.jsonl"), "EPOCH_SECONDS": "0.01"}
    code = f"""
        import sys
        import hpt_core
        from hpt_core.runner import build_controller, create_experiment
        from hpt_core.storage import Storage
        config = hpt_core.load_config({{
            "entrypoint": f"{{sys.executable}} trial.py",
            "searcher": {SEARCHER!r},
            "hyperparameters": {{"quality": {{"type": "categorical", "vals": [0.5, 2.0]}}}},
            "loggers": {{"event_log": {{"label": "mine"}}, "unstartable": {{}}}},
        }})
        storage = Storage("sqlite:///{tmp_path}/hpt.db")
        experiment_id = create_experiment(config, {str(MODEL_DIR)!r}, storage)
        print(build_controller(storage, experiment_id).run())
        print(*[trial.state for trial in storage.list_trials(experiment_id)])
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["COMPLETED", "COMPLETED COMPLETED"]
    assert "the hpt logger 'unstartable' could not start; experiment 1 goes on without it" in result.stderr
    assert "the hpt plugin 'event_log logger of experiment 1' failed in hpt_trial_ended" in result.stderr

    events = [json.loads(line) for line in events_log.read_text().splitlines()]
    assert {event["label"] for event in events} == {"mine"}
    assert events[0] == {"label": "mine", "event": "experiment_started", "metric": "val_loss"}
    assert events[-1] == {"label": "mine", "event": "experiment_ended", "state": "COMPLETED"}
    for trial_id in (1, 2):
        of_trial = [(event["event"], event.get("kind"), event.get("batches"))
                    for event in events if event.get("trial_id") == trial_id]
        assert of_trial == [("trial_started", None, None),
                            ("metrics_reported", "training", 10), ("metrics_reported", "training", 20),
                            ("metrics_reported", "validation", 20), ("trial_ended", None, None)]
