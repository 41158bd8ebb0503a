"""Real experiments with real trial processes: states, restarts, stops, invalid hyperparameters, pausing,
PBT warm starts, concurrency, and every reported metric in storage."""

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace

import pytest
from real_experiments import ExperimentFolder

import hpt_core
from hpt_core.channel import attempt_secret
from hpt_core.runner import build_controller


@pytest.fixture
def experiments(tmp_path):
    """Experiments of tests/runtime/model/trial.py in `tmp_path`: epochs of 0.02 s, 2 restarts, seed 1."""
    return ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.02"},
                            defaults={"max_restarts": 2, "reproducibility": {"experiment_seed": 1}})


# --- each search method, for real ---------------------------------------------------------------


def test_single_trains_one_trial_to_max_length(experiments):
    run = experiments.run({"name": "single", "max_length": {"epochs": 3}}, {"quality": 1.0})
    assert run.state == "COMPLETED"
    (trial,) = run.trials()
    assert (trial.state, trial.end_reason, trial.length_done) == ("COMPLETED", "completed its length", 3)
    assert run.storage.get_experiment(run.experiment_id).state == "COMPLETED"


def test_random_runs_max_trials_each_to_max_length(experiments):
    run = experiments.run(
        {"name": "random", "max_length": {"epochs": 2}, "max_trials": 3, "max_concurrent_trials": 2},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}})
    assert run.state == "COMPLETED"
    trials = run.trials()
    assert [(t.state, t.length_done) for t in trials] == [("COMPLETED", 2)] * 3
    assert len({t.hparams["quality"] for t in trials}) == 3


def test_grid_runs_one_trial_per_point(experiments):
    run = experiments.run(
        {"name": "grid", "max_length": {"epochs": 1}},
        {"quality": {"type": "categorical", "vals": [0.5, 1.0, 2.0]}, "g": {"n": {"type": "int", "minval": 1,
                                                                                 "maxval": 2, "count": 2}}})
    assert run.state == "COMPLETED"
    points = [(t.hparams["g"]["n"], t.hparams["quality"]) for t in run.trials()]
    assert sorted(points) == [(1, 0.5), (1, 1.0), (1, 2.0), (2, 0.5), (2, 1.0), (2, 2.0)]


def test_adaptive_asha_pauses_and_resumes_trials_whose_steps_continue(experiments):
    # aggressive, divisor 2, max_length 4 epochs, 4 trials: one bracket of R = 3 rungs at 1, 2 and 4 epochs.
    # Promotions out of rung 0: floor(4/2) = 2; out of rung 1: floor(2/2) = 1. So the lengths trained are
    # 1, 1, 2 and 4 epochs.
    run = experiments.run(
        {"name": "adaptive_asha", "max_length": {"epochs": 4}, "max_trials": 4, "max_concurrent_trials": 2,
         "mode": "aggressive", "divisor": 2},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}})
    assert run.state == "COMPLETED"
    trials = run.trials()
    assert sorted(t.length_done for t in trials) == [1, 1, 2, 4]
    assert all(t.state == "COMPLETED" for t in trials)
    log = run.log()
    resumed = [entry for entry in log if entry["event"] == "start" and entry["restore"] is not None]
    assert resumed, "a promoted trial was started again"
    for start in resumed:
        assert start["restore"]["warm_start"] is False
        first_report = next(entry for entry in log if entry["event"] == "report" and entry["trial_id"] ==
                            start["trial_id"] and entry["attempt"] == start["attempt"])
        assert first_report["epochs"] == start["restore"]["epochs"] + 1  # steps continue, not restart
    assert all(t.restarts == 0 for t in trials)  # a pause is not a restart


def test_pbt_children_start_from_their_parents_checkpoint(experiments):
    # population 3, truncate floor(0.34 * 3) = 1: after round 1 the worst is closed and the best cloned once.
    run = experiments.run(
        {"name": "pbt", "population_size": 3, "num_rounds": 2, "length_per_round": {"epochs": 1},
         "replace_function": {"truncate_fraction": 0.34},
         "explore_function": {"resample_probability": 0.0, "perturb_factor": 0.5}},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}})
    assert run.state == "COMPLETED"
    trials = run.trials()
    assert len(trials) == 4
    (child,) = [t for t in trials if t.parent_request_id is not None]
    parent = next(t for t in trials if t.request_id == child.parent_request_id)
    assert child.hparams["quality"] in (pytest.approx(parent.hparams["quality"] * 0.5),
                                        pytest.approx(min(parent.hparams["quality"] * 1.5, 2.0)))
    (start,) = [entry for entry in run.log() if entry["event"] == "start" and entry["trial_id"] == child.id]
    assert start["restore"]["warm_start"] is True
    parent_checkpoint = run.storage.get_checkpoint(start["restore"]["checkpoint_id"])
    assert parent_checkpoint.trial_id == parent.id and parent_checkpoint.epochs == 1
    assert start["restore"]["state"] == {"weight": pytest.approx(parent.hparams["quality"]), "epochs": 1}


# --- faults -------------------------------------------------------------------------------------


def test_a_killed_trial_restarts_from_its_latest_checkpoint(experiments):
    run = experiments.run(
        {"name": "grid", "max_length": {"epochs": 3}},
        {"behaviour": {"type": "categorical", "vals": ["die_once", "normal"]}, "checkpoint_each_epoch": True})
    assert run.state == "COMPLETED"
    dying, normal = run.trials()
    assert (dying.state, dying.restarts, dying.length_done) == ("COMPLETED", 1, 3)
    assert (normal.state, normal.restarts) == ("COMPLETED", 0)
    starts = [e for e in run.log() if e["event"] == "start" and e["trial_id"] == dying.id]
    assert [s["attempt"] for s in starts] == [1, 2]
    assert starts[1]["restore"]["epochs"] == 1 and starts[1]["restore"]["warm_start"] is False
    epochs_reported = [e["epochs"] for e in run.log()
                       if e["event"] == "report" and e["kind"] == "training" and e["trial_id"] == dying.id]
    assert epochs_reported == [1, 2, 3]  # attempt 1 died in epoch 2 before reporting it


def test_a_trial_that_keeps_dying_is_error_after_max_restarts_and_the_rest_finish(experiments):
    run = experiments.run(
        {"name": "grid", "max_length": {"epochs": 2}},
        {"behaviour": {"type": "categorical", "vals": ["die", "normal"]}}, max_restarts=1)
    assert run.state == "COMPLETED"
    dying, normal = run.trials()
    assert (dying.state, dying.end_reason, dying.restarts) == ("ERROR", "error after restarts", 1)
    assert normal.state == "COMPLETED"
    assert len([e for e in run.log() if e["event"] == "start" and e["trial_id"] == dying.id]) == 2
    events = run.searcher_events()
    assert {"name": "on_trial_exited_early", "args": [dying.request_id, "ERRORED"]} in events


def test_every_trial_erroring_makes_the_experiment_error(experiments):
    run = experiments.run(
        {"name": "single", "max_length": 2}, {"behaviour": "die"}, max_restarts=0)
    assert run.state == "ERROR"
    assert run.storage.get_experiment(run.experiment_id).state == "ERROR"


def test_a_stop_request_ends_the_trial_completed(experiments):
    run = experiments.run(
        {"name": "grid", "max_length": {"epochs": 5}},
        {"behaviour": {"type": "categorical", "vals": ["stop", "normal"]}})
    assert run.state == "COMPLETED"
    stopping, normal = run.trials()
    assert (stopping.state, stopping.end_reason) == ("COMPLETED", "early-stop request")
    assert run.storage.latest_checkpoint(stopping.id).epochs == 2
    assert (stopping.length_trained, stopping.length_done) == (2, 0)  # trained 2 epochs, reached no target
    assert (normal.state, normal.length_done, normal.length_trained) == ("COMPLETED", 5, 5)
    assert {"name": "on_trial_exited_early", "args": [stopping.request_id, "USER_REQUESTED_STOP"]} in \
        run.searcher_events()


def test_a_nan_searcher_metric_is_an_error_at_once_without_restarts(experiments):
    run = experiments.run(
        {"name": "grid", "max_length": 2}, {"behaviour": {"type": "categorical", "vals": ["nan", "normal"]}})
    nan, normal = run.trials()
    assert (nan.state, nan.restarts) == ("ERROR", 0)
    assert nan.length_trained == 20  # in batches, as it reported them, though its error ended it
    assert "invalid searcher metric" in nan.end_reason and "val_loss" in nan.end_reason
    assert normal.state == "COMPLETED" and run.state == "COMPLETED"


def test_a_nan_training_metric_is_refused_by_the_report_call_naming_it_and_nothing_of_it_is_stored(experiments):
    run = experiments.run({"name": "single", "max_length": {"epochs": 3}}, {"behaviour": "nan_training"},
                          max_restarts=0)
    (trial,) = run.trials()
    assert trial.state == "ERROR"
    stored = run.storage.metrics(trial_id=trial.id, kind="training")
    assert [record.epochs for record in stored] == [1]  # the second epoch's report raised in the trial
    assert "ValueError: metric 'loss' is nan" in run.trial_output(trial.id)


def test_training_reports_handed_over_together_are_each_stored_once_in_order(experiments):
    run = experiments.run({"name": "single", "max_length": {"epochs": 3}}, {"behaviour": "batched"})
    (trial,) = run.trials()
    assert trial.state == "COMPLETED"
    stored = run.storage.metrics(trial_id=trial.id, kind="training")
    returned = [(entry["batches"], entry["metrics"]) for entry in run.log("report", kind="training")]
    assert [(record.batches, record.metrics) for record in stored] == returned
    assert len(returned) == 30 and [record.seq for record in stored] == list(range(1, 31))


@pytest.mark.parametrize("searcher", [
    {"name": "random", "max_length": 2, "max_trials": 3},
    {"name": "adaptive_asha", "max_length": 4, "max_trials": 4, "mode": "aggressive", "divisor": 2},
])
def test_invalid_hyperparameters_are_replaced(experiments, searcher):
    run = experiments.run(
        {**searcher, "max_concurrent_trials": 2},
        {"behaviour": {"type": "categorical", "vals": ["invalid", "normal"]}}, seed=3)
    assert run.state == "COMPLETED"
    trials = run.trials()
    invalid = [t for t in trials if t.hparams["behaviour"] == "invalid"]
    valid = [t for t in trials if t.hparams["behaviour"] == "normal"]
    assert invalid, "the seed draws at least one invalid configuration"
    assert all((t.state, t.end_reason) == ("CANCELED", "invalid hyperparameters") for t in invalid)
    assert len(valid) == searcher["max_trials"]  # invalid trials do not count towards max_trials
    assert all(t.state == "COMPLETED" for t in valid)


# --- concurrency and completeness ---------------------------------------------------------------


def test_concurrency_never_exceeds_max_concurrent_trials(experiments):
    run = experiments.run(
        {"name": "random", "max_length": 3, "max_trials": 5, "max_concurrent_trials": 2},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}, variables={"EPOCH_SECONDS": "0.1"})
    assert run.state == "COMPLETED"
    spans = {}
    for entry in run.log():
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


def test_every_reported_metric_is_in_storage(experiments, storage_url):
    run = replace(experiments, storage_url=storage_url).run(
        {"name": "adaptive_asha", "max_length": 4, "max_trials": 4, "mode": "aggressive", "divisor": 2,
         "max_concurrent_trials": 2},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}})
    assert run.state == "COMPLETED"
    logged = sorted((e["trial_id"], e["kind"], e["batches"], e["epochs"], json.dumps(e["metrics"], sort_keys=True))
                    for e in run.log() if e["event"] == "report")
    stored = sorted((m.trial_id, m.kind, m.batches, m.epochs, json.dumps(m.metrics, sort_keys=True))
                    for m in run.storage.metrics(experiment_id=run.experiment_id))
    assert stored == logged and len(stored) > 8
    checkpoints = {(e["trial_id"], e["epochs"]) for e in run.log() if e["event"] == "checkpoint"}
    assert {(c.trial_id, c.epochs) for c in run.storage.checkpoints(experiment_id=run.experiment_id, include_deleted=True)} == checkpoints


def test_a_report_from_outside_the_experiment_or_for_another_trial_is_refused(experiments):
    experiment_id = experiments.create({"name": "random", "max_length": 6, "max_trials": 2,
                                        "max_concurrent_trials": 2}, {"quality": {"type": "double", "minval": 0.5,
                                                                                  "maxval": 1.0}},
                                       variables={"EPOCH_SECONDS": "0.3"})
    storage = experiments.storage()
    controller = build_controller(storage, experiment_id)
    runner = threading.Thread(target=controller.run)
    runner.start()
    try:
        while not (controller.channel and len(controller.trials) == 2
                   and all(trial.process_alive for trial in controller.trials.values())):
            time.sleep(0.05)
        first, second = sorted(trial.trial_id for trial in controller.trials.values())
        report = {"trial_id": second, "attempt": 1, "kind": "validation", "metrics": {"val_loss": -1e9},
                  "batches": 60, "epochs": 6, "seq": 1000}
        url = controller.channel.url
        assert post(url, "report", report, secret="not-the-secret") == 401
        assert post(url, "report", report, secret=None) == 401
        assert post(url, "report", report, secret=controller.secret) == 401  # the experiment's is no trial's
        assert post(url, "report", report, secret=attempt_secret(controller.secret, first, 1)) == 401
        stale = {**report, "attempt": 0}
        assert post(url, "report", stale, secret=attempt_secret(controller.secret, second, 0)) == 409
    finally:
        runner.join(timeout=60)
    assert all(m.metrics.get("val_loss") != -1e9 for m in storage.metrics(experiment_id=experiment_id))


def test_each_trial_attempt_holds_its_own_secret_and_never_the_experiments(experiments):
    run = experiments.run({"name": "random", "max_length": 2, "max_trials": 2, "max_concurrent_trials": 2},
                          {"quality": {"type": "double", "minval": 0.5, "maxval": 1.0}, "behaviour": "die_once"},
                          max_restarts=1, variables={"RECORD_ENVIRONMENT": "1"})
    assert run.state == "COMPLETED"
    experiment_secret = run.storage.get_experiment(run.experiment_id).secret
    secrets = {(entry["trial_id"], entry["attempt"]): entry["environment"]["HPT_SECRET"]
               for entry in run.log() if entry["event"] == "start"}
    assert len(secrets) == 4 and len(set(secrets.values())) == 4  # two trials, two attempts each
    for entry in run.log():
        if entry["event"] == "start":
            assert experiment_secret not in json.dumps(entry["environment"])


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


def test_a_warm_start_begins_every_trial_from_the_source_trials_checkpoint(experiments):
    first = experiments.run({"name": "single", "max_length": {"epochs": 2}}, {"quality": 1.0})
    (source,) = first.trials()
    source_checkpoint = first.storage.latest_checkpoint(source.id)
    second = experiments.run(
        {"name": "random", "max_length": {"epochs": 1}, "max_trials": 2, "source_trial_id": source.id},
        {"quality": 0.5})
    assert second.state == "COMPLETED"
    starts = [e for e in second.log() if e["event"] == "start" and e["trial_id"] != source.id]
    assert len(starts) == 2
    for start in starts:
        assert start["restore"]["checkpoint_id"] == source_checkpoint.id and start["restore"]["warm_start"] is True


def test_a_warm_start_from_an_unknown_trial_is_refused_before_anything_runs(experiments):
    with pytest.raises(hpt_core.ConfigError) as caught:
        experiments.create({"name": "single", "max_length": 1, "source_trial_id": 99}, {"quality": 1.0})
    assert caught.value.problems[0].path == "searcher.source_trial_id"
    with experiments.storage() as storage:
        assert storage.list_experiments() == []


def test_points_to_evaluate_are_the_first_trials_in_order(experiments):
    run = experiments.run(
        {"name": "random", "max_length": 1, "max_trials": 4, "max_concurrent_trials": 1,
         "points_to_evaluate": [{"quality": 1.5}, {"quality": 0.25}]},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}})
    assert run.state == "COMPLETED"
    trials = run.trials()
    assert [t.hparams["quality"] for t in trials[:2]] == [1.5, 0.25] and len(trials) == 4
    started = [e["trial_id"] for e in run.log() if e["event"] == "start"]
    assert started[:2] == [trials[0].id, trials[1].id]


def test_trials_wait_for_a_free_gpu_when_fewer_gpus_than_concurrent_trials(experiments, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")  # one GPU for hpt to hand out; these trials never touch it
    run = experiments.run(
        {"name": "random", "max_length": 2, "max_trials": 3, "max_concurrent_trials": 3},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}, variables={"EPOCH_SECONDS": "0.05"})
    assert run.state == "COMPLETED"
    assert [trial.state for trial in run.trials()] == ["COMPLETED"] * 3
    spans = {}
    for entry in run.log():
        start, end = spans.get(entry["trial_id"], (entry["time"], entry["time"]))
        spans[entry["trial_id"]] = (min(start, entry["time"]), max(end, entry["time"]))
    ordered = sorted(spans.values())
    assert all(earlier[1] < later[0] for earlier, later in zip(ordered, ordered[1:]))  # one trial holds the GPU
