"""Stopping trials on Ray as on one machine: SIGTERM, then SIGKILL after the grace period; a cancelled
experiment's trials checkpoint and exit; after `kill -9` of the controller, `hpt experiment resume` goes on."""

import json
import signal
import subprocess
import time

from real_experiments import ExperimentFolder

from hpt_core.executors import LaunchSpec, RayExecutor, TrialExit
from hpt_core.executors.ray import RayOptions
from hpt_core.executors.process_group import group_alive

STUBBORN = "trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.1; done"


def wait_for(condition, what, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_terminate_sends_sigterm_then_sigkill_once_the_grace_period_is_over(ray_cluster, tmp_path):
    empty_model_dir = tmp_path / "empty"
    empty_model_dir.mkdir()
    settings = RayOptions(type="ray", address=ray_cluster.address)
    executor = RayExecutor(tmp_path / "experiment", empty_model_dir, settings)
    logs = {trial_id: tmp_path / f"trial-{trial_id}.log" for trial_id in (1, 2)}
    executor.launch(LaunchSpec(1, 1, STUBBORN, {}, str(logs[1])))
    executor.launch(LaunchSpec(2, 1, "echo ready; exec sleep 60", {}, str(logs[2])))
    exits = []
    wait_for(lambda: exits.extend(executor.poll()) or all("ready" in log.read_text() for log in logs.values()),
             "both trials to start")
    assert executor.running() == {1, 2}
    executor.terminate(1, grace_seconds=1.0)
    executor.terminate(2, grace_seconds=30.0)
    executor.ensure_stopped(1)
    executor.ensure_stopped(2)
    exits.extend(executor.poll())
    assert sorted(exits, key=lambda end: end.trial_id) == [TrialExit(1, 1, -signal.SIGKILL),
                                                          TrialExit(2, 1, -signal.SIGTERM)]
    assert "got TERM" in logs[1].read_text(), "SIGTERM came first"
    assert executor.running() == set()
    executor.shutdown()


def test_the_same_trial_of_two_experiments_runs_in_two_working_directories(ray_cluster, tmp_path):
    """Two storages' experiments with the same id and code share a cluster: their folders (uuids) keep them apart."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "train.py").write_text("print('training')\n")
    settings = RayOptions(type="ray", address=ray_cluster.address)
    workdirs = []
    for experiment_uuid in ("1b4e28ba-first", "6fa459ea-second"):
        executor = RayExecutor(tmp_path / experiment_uuid, model_dir, settings)
        log = tmp_path / f"{experiment_uuid}.log"
        executor.launch(LaunchSpec(1, 1, "pwd", {}, str(log)))
        exits = []
        wait_for(lambda: exits.extend(executor.poll()) or exits, "the trial to end")
        assert exits == [TrialExit(1, 1, 0)]
        workdirs.append(log.read_text().splitlines()[-1])
        executor.shutdown()
    assert workdirs[0] != workdirs[1]
    assert [experiment_uuid in workdir for experiment_uuid, workdir in zip(("1b4e28ba-first", "6fa459ea-second"),
                                                                          workdirs)] == [True, True]


def test_a_cancelled_experiments_trials_checkpoint_and_exit(ray_cluster, experiment, tmp_path):
    trial_log = tmp_path / "run-1" / "trial-log.jsonl"  # the first experiment's (see the fixture)

    def cancel_after_the_first_checkpoints(controller):
        entries = [json.loads(line) for line in trial_log.read_text().splitlines()] if trial_log.exists() else []
        if len({entry["trial_id"] for entry in entries if entry["event"] == "checkpoint"}) == 2:
            controller.cancel()

    run = experiment({"name": "random", "max_length": {"epochs": 50}, "max_trials": 2, "max_concurrent_trials": 2},
                     {"behaviour": "checkpoint_each_epoch", "quality": {"type": "double", "minval": 0.1, "maxval": 2}},
                     executor={"type": "ray", "address": ray_cluster.address},
                     during=cancel_after_the_first_checkpoints)
    assert run.state == "CANCELED"
    assert [(trial.state, trial.restarts) for trial in run.trials()] == [("CANCELED", 0)] * 2
    exits = [entry for entry in run.log() if entry["event"] == "exit"]
    assert sorted(entry["trial_id"] for entry in exits) == [trial.id for trial in run.trials()]
    assert all(entry["epochs"] < 50 for entry in exits)


def test_after_kill_9_of_the_controller_resume_continues_on_the_cluster(ray_cluster, model_dir, tmp_path):
    experiments = ExperimentFolder(tmp_path, model_dir, variables={"EPOCH_SECONDS": "0.2"})
    path = experiments.write_file(
        "exp", {"name": "random", "max_length": {"epochs": 4}, "max_trials": 2, "max_concurrent_trials": 2},
        {"behaviour": "checkpoint_each_epoch", "quality": {"type": "double", "minval": 0.1, "maxval": 2.0}},
        directory=model_dir, seed=3, executor={"type": "ray", "address": ray_cluster.address})
    controller = experiments.start_hpt("experiment", "create", str(path), "--quiet", stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)

    wait_for(lambda: len({entry["trial_id"] for entry in experiments.log() if entry["event"] == "checkpoint"}) == 2,
             "both trials to checkpoint")
    controller.send_signal(signal.SIGKILL)
    controller.wait()
    orphans = {entry["pgid"] for entry in experiments.log() if entry["event"] == "start"}
    wait_for(lambda: not any(map(group_alive, orphans)), "Ray to end the dead controller's trials")

    resumed = experiments.hpt("experiment", "resume", "1", "--quiet", timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    storage = experiments.storage()
    assert storage.get_experiment(1).state == "COMPLETED"
    assert [(trial.state, trial.length_done) for trial in storage.list_trials(1)] == [("COMPLETED", 4)] * 2
    second_starts = [entry for entry in experiments.log() if entry["event"] == "start" and entry["attempt"] == 2]
    assert len(second_starts) == 2 and all(start["restore_epochs"] >= 1 for start in second_starts)
