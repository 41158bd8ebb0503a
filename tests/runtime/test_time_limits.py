"""max_trial_time stops a hung trial (an error that may be restarted); max_time stops the experiment creating trials."""

import json
import sys
from pathlib import Path

import hpt_core
from hpt_core.runner import build_controller, create_experiment
from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parent / "model"


def run(home, searcher, hyperparameters, **fields):
    config = hpt_core.load_config({"entrypoint": f"{sys.executable} trial.py", "searcher": {"metric": "val_loss",
                                   **searcher}, "hyperparameters": hyperparameters, **fields})
    storage = Storage(f"sqlite:///{home}/hpt.db")
    experiment_id = create_experiment(config, MODEL_DIR, storage)
    return storage, experiment_id, build_controller(storage, experiment_id).run()


def test_a_hung_trial_is_stopped_by_max_trial_time_restarted_then_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HPT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRIAL_LOG", str(tmp_path / "log.jsonl"))
    storage, experiment_id, state = run(
        tmp_path, {"name": "single", "max_length": 2}, {"behaviour": "hang"}, max_trial_time=4, max_restarts=1)
    (hung,) = storage.list_trials(experiment_id)
    assert (hung.state, hung.restarts, hung.end_reason) == ("ERROR", 1, "max_trial_time exceeded")
    assert state == "ERROR"  # its only trial errored
    starts = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [entry["attempt"] for entry in starts if entry["event"] == "start" and entry["trial_id"] == hung.id] == [1, 2]


def test_max_time_stops_creating_trials_and_lets_running_ones_finish_their_unit(tmp_path, monkeypatch):
    monkeypatch.setenv("HPT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRIAL_LOG", str(tmp_path / "log.jsonl"))
    monkeypatch.setenv("EPOCH_SECONDS", "0.4")
    storage, experiment_id, state = run(
        tmp_path, {"name": "random", "max_length": {"epochs": 4}, "max_trials": 50, "max_concurrent_trials": 1},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}, max_time=5)
    assert state == "COMPLETED"
    experiment = storage.get_experiment(experiment_id)
    trials = storage.list_trials(experiment_id)
    assert 1 <= len(trials) < 50
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    deadline = experiment.created_at.timestamp() + 5
    assert all(t.started_at.timestamp() < deadline for t in trials)  # launched before max_time only
    assert all(t.state == "COMPLETED" and t.length_done == 4 for t in trials)  # each finished its unit
    assert any(entry["time"] > deadline for entry in log if entry["event"] == "report")
