"""Who runs an experiment: the lease in storage, on SQLite and on PostgreSQL alike.

Two `resume`s racing for one experiment: exactly one runs it; a lease whose holder (on another host) stopped
renewing is taken over once it expires; a controller whose lease was taken over stops and leaves the
experiment to the taker; `cancel` acts through storage, never on another host's processes.
"""

import re
import subprocess
import time

import pytest

from hpt_core.ownership import Lease, LeaseLost
from hpt_core.runner import build_controller, change_state
from real_experiments import ExperimentFolder

SINGLE = {"name": "single", "max_length": {"epochs": 2}}


def test_of_two_resumes_racing_for_one_experiment_exactly_one_runs_it(tmp_path, storage_url):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.3"}, storage_url=storage_url)
    experiment_id = experiments.create(SINGLE, {"quality": 1.0})
    racers = [experiments.start_hpt("experiment", "resume", str(experiment_id), "--quiet",
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [racer.communicate(timeout=120)[0] for racer in racers]
    codes = sorted(racer.returncode for racer in racers)
    assert codes == [0, 2], outputs
    winner, loser = (racers[0], racers[1]) if racers[0].returncode == 0 else (racers[1], racers[0])
    message = outputs[racers.index(loser)]
    assert re.search(rf"experiment {experiment_id} is already run by process {winner.pid} on host \S+ "
                     r"\(since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", message), message
    assert "Traceback" not in message
    with experiments.storage() as storage:
        assert storage.get_experiment(experiment_id).state == "COMPLETED"
        assert [trial.state for trial in storage.list_trials(experiment_id)] == ["COMPLETED"]
        assert storage.lease(experiment_id) is None


def test_a_lease_of_a_dead_host_blocks_resume_until_it_expires_then_is_taken_over(tmp_path, storage_url):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.1"}, storage_url=storage_url)
    experiment_id = experiments.create(SINGLE, {"quality": 1.0})
    with experiments.storage() as storage:  # a controller on another host took the lease, then its host died
        storage.acquire_lease(experiment_id, token="gone", host="other-host", pid=4242, seconds=3)
    refused = experiments.hpt("experiment", "resume", str(experiment_id), timeout=120)
    assert refused.returncode == 2
    assert f"experiment {experiment_id} is already run by process 4242 on host other-host" in refused.stderr
    with experiments.storage() as storage:
        while not storage.lease(experiment_id).expired:
            time.sleep(0.2)
    resumed = experiments.hpt("experiment", "resume", str(experiment_id), timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with experiments.storage() as storage:
        assert storage.get_experiment(experiment_id).state == "COMPLETED"
        assert storage.lease(experiment_id) is None


def test_a_controller_whose_lease_is_taken_over_stops_its_trials_and_leaves_the_experiment_alone(tmp_path):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.2"})
    experiment_id = experiments.create({"name": "single", "max_length": {"epochs": 50}}, {"quality": 1.0})
    storage = experiments.storage()

    def take_over_once_a_trial_runs(controller):
        if experiments.log("start") and storage.lease(experiment_id).host != "new-host":
            storage.acquire_lease(experiment_id, token="taker", host="new-host", pid=7, seconds=60,
                                  replacing=controller.lease.token)  # as if it had expired

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPT_HOME", str(experiments.home))
        controller = build_controller(storage, experiment_id, on_tick=take_over_once_a_trial_runs)
        controller.lease = Lease(storage, experiment_id, seconds=5, heartbeat_seconds=0.2)
        with pytest.raises(LeaseLost, match=f"experiment {experiment_id}: this controller's lease expired and "
                                            "process 7 on host new-host .* took the experiment over"):
            controller.run()
    assert controller.executor.running() == set()
    assert storage.get_experiment(experiment_id).state == "ACTIVE"  # the taker's to run, not paused or ended
    assert storage.lease(experiment_id).token == "taker"
    assert [trial.state for trial in storage.list_trials(experiment_id)] == ["RUNNING"]  # as the taker finds it


def test_cancel_leaves_the_trials_of_a_controller_on_another_host_to_it(tmp_path, storage_url):
    experiments = ExperimentFolder(tmp_path, storage_url=storage_url)
    experiment_id = experiments.create(SINGLE, {"quality": 1.0})
    with experiments.storage() as storage:
        trial_id = storage.create_trial(experiment_id, 1, {"quality": 1.0}, seed=1)
        storage.update_trial(trial_id, state="RUNNING")
        storage.acquire_lease(experiment_id, token="remote", host="other-host", pid=4242, seconds=60)
        assert change_state(storage, experiment_id, "cancel") == "CANCELED"
        assert storage.get_trial(trial_id).state == "RUNNING"  # its controller ends it when it reads CANCELED
        assert storage.lease(experiment_id).token == "remote"


def test_cancel_of_an_experiment_no_controller_runs_ends_its_trials(tmp_path):
    experiments = ExperimentFolder(tmp_path)
    experiment_id = experiments.create(SINGLE, {"quality": 1.0})
    with experiments.storage() as storage:
        trial_id = storage.create_trial(experiment_id, 1, {"quality": 1.0}, seed=1)
        storage.update_trial(trial_id, state="PAUSED")
        storage.acquire_lease(experiment_id, token="expired", host="other-host", pid=4242, seconds=0)
        result = experiments.hpt("experiment", "cancel", str(experiment_id), timeout=60)
        assert result.returncode == 0 and "no controller is running it" in result.stdout, result.stdout
        assert storage.get_trial(trial_id).state == "CANCELED"
        assert storage.get_experiment(experiment_id).state == "CANCELED"
        assert storage.lease(experiment_id) is None


def test_describe_names_the_controller_that_holds_the_lease(tmp_path):
    experiments = ExperimentFolder(tmp_path)
    experiment_id = experiments.create(SINGLE, {"quality": 1.0})
    with experiments.storage() as storage:
        storage.acquire_lease(experiment_id, token="t", host="node-9", pid=4242, seconds=0)
    described = experiments.hpt("experiment", "describe", str(experiment_id))
    assert re.search(r"run by process 4242 on host node-9 since \S+; its lease expired at \S+: "
                     rf"`hpt experiment resume {experiment_id}` takes the experiment over",
                     " ".join(described.stdout.split())), described.stdout


def test_a_controller_that_was_stopped_past_its_lease_learns_of_the_takeover_before_it_acts_again(tmp_path):
    experiments = ExperimentFolder(tmp_path)
    experiment_id = experiments.create(SINGLE, {"quality": 1.0})
    with experiments.storage() as storage:
        lease = Lease(storage, experiment_id, seconds=0.3, heartbeat_seconds=0.1)
        lease.acquire()  # its heartbeat never runs: as if the process had been stopped (SIGSTOP, a suspend)
        lease.check()
        time.sleep(0.4)
        storage.acquire_lease(experiment_id, token="taker", host="new-host", pid=7, seconds=60)
        with pytest.raises(LeaseLost, match="process 7 on host new-host"):
            lease.check()
