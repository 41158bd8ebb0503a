"""Ctrl-C on `hpt experiment create`: the signal handler only asks, and the controller's loop cancels cleanly,
whatever it was doing (here: launching a burst of trials)."""

import signal
import subprocess
import time

from real_experiments import RUNTIME_MODEL, ExperimentFolder


def test_sigint_during_a_burst_of_launches_cancels_the_experiment_cleanly(tmp_path):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.5"})
    path = experiments.write_file("exp", {"name": "random", "max_length": {"epochs": 4}, "max_trials": 12,
                                          "max_concurrent_trials": 6}, {"quality": 1.0})
    controller = experiments.start_hpt("experiment", "create", str(path), str(RUNTIME_MODEL), "--quiet",
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not experiments.log("start"):  # the first trial runs; the others are being launched
        assert time.monotonic() < deadline and controller.poll() is None, "no trial started"
        time.sleep(0.01)
    controller.send_signal(signal.SIGINT)
    output, _ = controller.communicate(timeout=90)
    assert "Traceback" not in output, output
    storage = experiments.storage()
    assert storage.get_experiment(1).state == "CANCELED"
    trials = storage.list_trials(1)
    assert {trial.state for trial in trials} <= {"CANCELED", "COMPLETED"}
    assert storage.lease(1) is None  # the controller gave its lease up
