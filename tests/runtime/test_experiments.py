"""Real experiments with real trial processes: states, restarts, stops, invalid hyperparameters, pausing,
PBT warm starts, concurrency, and every reported metric in storage."""

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import hpt_core
from hpt_core.runner import build_controller, create_experiment
from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parent / "model"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HPT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRIAL_LOG", str(tmp_path / "trial-log.jsonl"))
    monkeypatch.setenv("EPOCH_SECONDS", "0.02")
    return tmp_path


def experiment_config(searcher, hyperparameters, **fields):
    return hpt_core.load_config({
        "entrypoint": f"{sys.executable} trial.py",
        "max_restarts": fields.pop("max_restarts", 2),
        "reproducibility": {"experiment_seed": fields.pop("seed", 1)},
        "searcher": {"metric": "val_loss", **searcher},
        "hyperparameters": hyperparameters,
        **fields,
    })


def run(config, home, storage_url=None):
    storage = Storage(storage_url or f"sqlite:///{home}/hpt.db")
    experiment_id = create_experiment(config, MODEL_DIR, storage)
    state = build_controller(storage, experiment_id).run()
    return storage, experiment_id, state


def trial_log(home):
    path = home / "trial-log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def trials_of(storage, experiment_id):
    return storage.list_trials(experiment_id)


def searcher_events(storage, experiment_id):
    return [record.payload for record in storage.searcher_records(experiment_id) if record.kind == "event"]


# --- each search method, for real ---------------------------------------------------------------


def test_single_trains_one_trial_to_max_length(home):
    storage, experiment_id, state = run(
        experiment_config({"name": "single", "max_length": {"epochs": 3}}, {"quality": 1.0}), home)
    assert state == "COMPLETED"
    (trial,) = trials_of(storage, experiment_id)
    assert (trial.state, trial.end_reason, trial.length_done) == ("COMPLETED", "completed its length", 3)
    assert storage.get_experiment(experiment_id).state == "COMPLETED"


def test_random_runs_max_trials_each_to_max_length(home):
    storage, experiment_id, state = run(experiment_config(
        {"name": "random", "max_length": {"epochs": 2}, "max_trials": 3, "max_concurrent_trials": 2},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}), home)
    assert state == "COMPLETED"
    trials = trials_of(storage, experiment_id)
    assert [(t.state, t.length_done) for t in trials] == [("COMPLETED", 2)] * 3
    assert len({t.hparams["quality"] for t in trials}) == 3


def test_grid_runs_one_trial_per_point(home):
    storage, experiment_id, state = run(experiment_config(
        {"name": "grid", "max_length": {"epochs": 1}},
        {"quality": {"type": "categorical", "vals": [0.5, 1.0, 2.0]}, "g": {"n": {"type": "int", "minval": 1,
                                                                                 "maxval": 2, "count": 2}}}), home)
    assert state == "COMPLETED"
    points = [(t.hparams["g"]["n"], t.hparams["quality"]) for t in trials_of(storage, experiment_id)]
    assert sorted(points) == [(1, 0.5), (1, 1.0), (1, 2.0), (2, 0.5), (2, 1.0), (2, 2.0)]


def test_adaptive_asha_pauses_and_resumes_trials_whose_steps_continue(home):
    # aggressive, divisor 2, max_length 4 epochs, 4 trials: one bracket of R = 3 rungs at 1, 2 and 4 epochs.
    # Promotions out of rung 0: floor(4/2) = 2; out of rung 1: floor(2/2) = 1. So the lengths trained are
    # 1, 1, 2 and 4 epochs.
    storage, experiment_id, state = run(experiment_config(
        {"name": "adaptive_asha", "max_length": {"epochs": 4}, "max_trials": 4, "max_concurrent_trials": 2,
         "mode": "aggressive", "divisor": 2},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}), home)
    assert state == "COMPLETED"
    trials = trials_of(storage, experiment_id)
    assert sorted(t.length_done for t in trials) == [1, 1, 2, 4]
    assert all(t.state == "COMPLETED" for t in trials)
    log = trial_log(home)
    resumed = [entry for entry in log if entry["event"] == "start" and entry["restore"] is not None]
    assert resumed, "a promoted trial was started again"
    for start in resumed:
        assert start["restore"]["warm_start"] is False
        first_report = next(entry for entry in log if entry["event"] == "report" and entry["trial_id"] ==
                            start["trial_id"] and entry["attempt"] == start["attempt"])
        assert first_report["epochs"] == start["restore"]["epochs"] + 1  # steps continue, not restart
    assert all(t.restarts == 0 for t in trials)  # a pause is not a restart


def test_pbt_children_start_from_their_parents_checkpoint(home):
    # population 3, truncate floor(0.34 * 3) = 1: after round 1 the worst is closed and the best cloned once.
    storage, experiment_id, state = run(experiment_config(
        {"name": "pbt", "population_size": 3, "num_rounds": 2, "length_per_round": {"epochs": 1},
         "replace_function": {"truncate_fraction": 0.34},
         "explore_function": {"resample_probability": 0.0, "perturb_factor": 0.5}},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}), home)
    assert state == "COMPLETED"
    trials = trials_of(storage, experiment_id)
    assert len(trials) == 4
    (child,) = [t for t in trials if t.parent_request_id is not None]
    parent = next(t for t in trials if t.request_id == child.parent_request_id)
    assert child.hparams["quality"] in (pytest.approx(parent.hparams["quality"] * 0.5),
                                        pytest.approx(min(parent.hparams["quality"] * 1.5, 2.0)))
    (start,) = [entry for entry in trial_log(home) if entry["event"] == "start" and entry["trial_id"] == child.id]
    assert start["restore"]["warm_start"] is True
    parent_checkpoint = storage.get_checkpoint(start["restore"]["checkpoint_id"])
    assert parent_checkpoint.trial_id == parent.id and parent_checkpoint.epochs == 1
    assert start["restore"]["state"] == {"weight": pytest.approx(parent.hparams["quality"]), "epochs": 1}


# --- faults -------------------------------------------------------------------------------------


def test_a_killed_trial_restarts_from_its_latest_checkpoint(home):
    storage, experiment_id, state = run(experiment_config(
        {"name": "grid", "max_length": {"epochs": 3}},
        {"behaviour": {"type": "categorical", "vals": ["die_once", "normal"]}, "checkpoint_each_epoch": True}), home)
    assert state == "COMPLETED"
    dying, normal = trials_of(storage, experiment_id)
    assert (dying.state, dying.restarts, dying.length_done) == ("COMPLETED", 1, 3)
    assert (normal.state, normal.restarts) == ("COMPLETED", 0)
    starts = [e for e in trial_log(home) if e["event"] == "start" and e["trial_id"] == dying.id]
    assert [s["attempt"] for s in starts] == [1, 2]
    assert starts[1]["restore"]["epochs"] == 1 and starts[1]["restore"]["warm_start"] is False
    epochs_reported = [e["epochs"] for e in trial_log(home)
                       if e["event"] == "report" and e["kind"] == "training" and e["trial_id"] == dying.id]
    assert epochs_reported == [1, 2, 3]  # attempt 1 died in epoch 2 before reporting it


def test_a_trial_that_keeps_dying_is_error_after_max_restarts_and_the_rest_finish(home):
    storage, experiment_id, state = run(experiment_config(
        {"name": "grid", "max_length": {"epochs": 2}},
        {"behaviour": {"type": "categorical", "vals": ["die", "normal"]}}, max_restarts=1), home)
    assert state == "COMPLETED"
    dying, normal = trials_of(storage, experiment_id)
    assert (dying.state, dying.end_reason, dying.restarts) == ("ERROR", "error after restarts", 1)
    assert normal.state == "COMPLETED"
    assert len([e for e in trial_log(home) if e["event"] == "start" and e["trial_id"] == dying.id]) == 2
    events = searcher_events(storage, experiment_id)
    assert {"name": "on_trial_exited_early", "args": [dying.request_id, "ERRORED"]} in events


def test_every_trial_erroring_makes_the_experiment_error(home):
    storage, experiment_id, state = run(experiment_config(
        {"name": "single", "max_length": 2}, {"behaviour": "die"}, max_restarts=0), home)
    assert state == "ERROR"
    assert storage.get_experiment(experiment_id).state == "ERROR"


def test_a_stop_request_ends_the_trial_completed(home):
    storage, experiment_id, state = run(experiment_config(
        {"name": "grid", "max_length": {"epochs": 5}},
        {"behaviour": {"type": "categorical", "vals": ["stop", "normal"]}}), home)
    assert state == "COMPLETED"
    stopping, normal = trials_of(storage, experiment_id)
    assert (stopping.state, stopping.end_reason) == ("COMPLETED", "early-stop request")
    assert storage.latest_checkpoint(stopping.id).epochs == 2
    assert (stopping.length_trained, stopping.length_done) == (2, 0)  # trained 2 epochs, reached no target
    assert (normal.state, normal.length_done, normal.length_trained) == ("COMPLETED", 5, 5)
    assert {"name": "on_trial_exited_early", "args": [stopping.request_id, "USER_REQUESTED_STOP"]} in \
        searcher_events(storage, experiment_id)


def test_a_nan_searcher_metric_is_an_error_at_once_without_restarts(home):
    storage, experiment_id, state = run(experiment_config(
        {"name": "grid", "max_length": 2}, {"behaviour": {"type": "categorical", "vals": ["nan", "normal"]}}), home)
    nan, normal = trials_of(storage, experiment_id)
    assert (nan.state, nan.restarts) == ("ERROR", 0)
    assert nan.length_trained == 20  # in batches, as it reported them, though its error ended it
    assert "invalid searcher metric" in nan.end_reason and "val_loss" in nan.end_reason
    assert normal.state == "COMPLETED" and state == "COMPLETED"


@pytest.mark.parametrize("searcher", [
    {"name": "random", "max_length": 2, "max_trials": 3},
    {"name": "adaptive_asha", "max_length": 4, "max_trials": 4, "mode": "aggressive", "divisor": 2},
])
def test_invalid_hyperparameters_are_replaced(home, searcher):
    storage, experiment_id, state = run(experiment_config(
        {**searcher, "max_concurrent_trials": 2},
        {"behaviour": {"type": "categorical", "vals": ["invalid", "normal"]}}, seed=3), home)
    assert state == "COMPLETED"
    trials = trials_of(storage, experiment_id)
    invalid = [t for t in trials if t.hparams["behaviour"] == "invalid"]
    valid = [t for t in trials if t.hparams["behaviour"] == "normal"]
    assert invalid, "the seed draws at least one invalid configuration"
    assert all((t.state, t.end_reason) == ("CANCELED", "invalid hyperparameters") for t in invalid)
    assert len(valid) == searcher["max_trials"]  # invalid trials do not count towards max_trials
    assert all(t.state == "COMPLETED" for t in valid)


# --- concurrency and completeness ---------------------------------------------------------------


def test_concurrency_never_exceeds_max_concurrent_trials(home, monkeypatch):
    monkeypatch.setenv("EPOCH_SECONDS", "0.1")
    storage, experiment_id, state = run(experiment_config(
        {"name": "random", "max_length": 3, "max_trials": 5, "max_concurrent_trials": 2},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}), home)
    assert state == "COMPLETED"
    spans = {}
    for entry in trial_log(home):
        key = (entry["trial_id"], entry["attempt"])
        start, end = spans.get(key, (entry["time"], entry["time"]))
        spans[key] = (min(start, entry["time"]), max(end, entry["time"]))
    edges = sorted([(start, 1) for start, _ in spans.values()] + [(end, -1) for _, end in spans.values()],
                   key=lambda edge: (edge[0], edge[1]))
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    assert peak == 2


def test_every_reported_metric_is_in_storage(home, storage_url):
    storage, experiment_id, state = run(experiment_config(
        {"name": "adaptive_asha", "max_length": 4, "max_trials": 4, "mode": "aggressive", "divisor": 2,
         "max_concurrent_trials": 2},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}), home, storage_url)
    assert state == "COMPLETED"
    logged = sorted((e["trial_id"], e["kind"], e["batches"], e["epochs"], json.dumps(e["metrics"], sort_keys=True))
                    for e in trial_log(home) if e["event"] == "report")
    stored = sorted((m.trial_id, m.kind, m.batches, m.epochs, json.dumps(m.metrics, sort_keys=True))
                    for m in storage.metrics(experiment_id=experiment_id))
    assert stored == logged and len(stored) > 8
    checkpoints = {(e["trial_id"], e["epochs"]) for e in trial_log(home) if e["event"] == "checkpoint"}
    assert {(c.trial_id, c.epochs) for c in storage.checkpoints(experiment_id=experiment_id, include_deleted=True)} == checkpoints


def test_a_report_from_outside_the_experiment_is_refused(home, monkeypatch):
    monkeypatch.setenv("EPOCH_SECONDS", "0.3")
    storage = Storage(f"sqlite:///{home}/hpt.db")
    config = experiment_config({"name": "single", "max_length": 6}, {"quality": 1.0})
    experiment_id = create_experiment(config, MODEL_DIR, storage)
    controller = build_controller(storage, experiment_id)
    runner = threading.Thread(target=controller.run)
    runner.start()
    try:
        while not (controller.channel and storage.list_trials(experiment_id)
                   and controller.trials[1].process_alive):
            time.sleep(0.05)
        trial_id = storage.list_trials(experiment_id)[0].id
        report = {"trial_id": trial_id, "attempt": 1, "kind": "validation", "metrics": {"val_loss": -1e9},
                  "batches": 60, "epochs": 6}
        assert post(controller.channel.url, "report", report, secret="not-the-secret") == 401
        assert post(controller.channel.url, "report", report, secret=None) == 401
        other_trial = {**report, "trial_id": trial_id + 1000}
        assert post(controller.channel.url, "report", other_trial, secret=controller.secret) == 401
        stale = {**report, "attempt": 0}
        assert post(controller.channel.url, "report", stale, secret=controller.secret) == 409
    finally:
        runner.join(timeout=60)
    assert all(m.metrics.get("val_loss") != -1e9 for m in storage.metrics(experiment_id=experiment_id))


def post(url, name, body, secret):
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    request = urllib.request.Request(f"{url}/v1/{name}", data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_warm_start_begins_every_trial_from_the_source_trials_checkpoint(home):
    storage, first_experiment, _ = run(
        experiment_config({"name": "single", "max_length": {"epochs": 2}}, {"quality": 1.0}), home)
    (source,) = trials_of(storage, first_experiment)
    source_checkpoint = storage.latest_checkpoint(source.id)
    _, second_experiment, state = run(experiment_config(
        {"name": "random", "max_length": {"epochs": 1}, "max_trials": 2, "source_trial_id": source.id},
        {"quality": 0.5}), home)
    assert state == "COMPLETED"
    starts = [e for e in trial_log(home) if e["event"] == "start" and e["trial_id"] != source.id]
    assert len(starts) == 2
    for start in starts:
        assert start["restore"]["checkpoint_id"] == source_checkpoint.id and start["restore"]["warm_start"] is True


def test_a_warm_start_from_an_unknown_trial_is_refused_before_anything_runs(home):
    storage = Storage(f"sqlite:///{home}/hpt.db")
    config = experiment_config({"name": "single", "max_length": 1, "source_trial_id": 99}, {"quality": 1.0})
    with pytest.raises(hpt_core.ConfigError) as caught:
        create_experiment(config, MODEL_DIR, storage)
    assert caught.value.problems[0].path == "searcher.source_trial_id"
    assert storage.list_experiments() == []


def test_points_to_evaluate_are_the_first_trials_in_order(home):
    storage, experiment_id, state = run(experiment_config(
        {"name": "random", "max_length": 1, "max_trials": 4, "max_concurrent_trials": 1,
         "points_to_evaluate": [{"quality": 1.5}, {"quality": 0.25}]},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}), home)
    assert state == "COMPLETED"
    trials = trials_of(storage, experiment_id)
    assert [t.hparams["quality"] for t in trials[:2]] == [1.5, 0.25] and len(trials) == 4
    started = [e["trial_id"] for e in trial_log(home) if e["event"] == "start"]
    assert started[:2] == [trials[0].id, trials[1].id]


def test_trials_wait_for_a_free_gpu_when_fewer_gpus_than_concurrent_trials(home, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")  # one GPU for hpt to hand out; these trials never touch it
    monkeypatch.setenv("EPOCH_SECONDS", "0.05")
    storage, experiment_id, state = run(experiment_config(
        {"name": "random", "max_length": 2, "max_trials": 3, "max_concurrent_trials": 3},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}), home)
    assert state == "COMPLETED"
    assert [trial.state for trial in trials_of(storage, experiment_id)] == ["COMPLETED"] * 3
    spans = {}
    for entry in trial_log(home):
        start, end = spans.get(entry["trial_id"], (entry["time"], entry["time"]))
        spans[entry["trial_id"]] = (min(start, entry["time"]), max(end, entry["time"]))
    ordered = sorted(spans.values())
    assert all(earlier[1] < later[0] for earlier, later in zip(ordered, ordered[1:]))  # one trial holds the GPU
