"""max_trial_time stops a hung trial (an error that may be restarted); max_time stops the experiment creating trials."""

from real_experiments import ExperimentFolder


def test_a_hung_trial_is_stopped_by_max_trial_time_restarted_then_error(tmp_path):
    run = ExperimentFolder(tmp_path).run(
        {"name": "single", "max_length": 2}, {"behaviour": "hang"}, max_trial_time=4, max_restarts=1)
    (hung,) = run.trials()
    assert (hung.state, hung.restarts, hung.end_reason) == ("ERROR", 1, "max_trial_time exceeded")
    assert run.state == "ERROR"  # its only trial errored
    starts = run.log()
    assert [entry["attempt"] for entry in starts if entry["event"] == "start" and entry["trial_id"] == hung.id] == [1, 2]


def test_max_time_stops_creating_trials_and_lets_running_ones_finish_their_unit(tmp_path):
    run = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.4"}).run(
        {"name": "random", "max_length": {"epochs": 4}, "max_trials": 50, "max_concurrent_trials": 2},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}, max_time=5)
    assert run.state == "COMPLETED"
    experiment = run.storage.get_experiment(run.experiment_id)
    trials = run.trials()
    assert 1 <= len(trials) < 50
    log = run.log()
    deadline = experiment.created_at.timestamp() + 5
    launched = [t for t in trials if t.started_at is not None]
    assert launched and all(t.started_at.timestamp() < deadline for t in launched)  # launched before max_time only
    assert all(t.state == "COMPLETED" and t.length_done == 4 for t in launched)  # each finished its unit
    # one created just before max_time may wait for a preloading interpreter past it: it never runs
    assert all((t.state, t.end_reason) == ("CANCELED", "experiment time limit (max_time)")
               for t in trials if t.started_at is None)
    # two at a time, so that a trial runs at the deadline even when another is between attempts
    assert any(entry["time"] > deadline for entry in log if entry["event"] == "report")
