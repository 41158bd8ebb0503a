"""The fork server may die at any time: its trials are still seen to their end, and later trials start cold."""

import io
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from hpt_core.executors import LaunchSpec, LocalExecutor
from hpt_core.executors.warm_start import UNKNOWN_EXIT_STATUS
from hpt_core.progress import ProgressView
from real_experiments import ExperimentFolder

TIMEOUT_SECONDS = 120

TRIAL = """
import os, sys, time
import numpy  # preloaded by the fork server
with open(os.environ["PID_FILE"], "w") as handle:
    handle.write(str(os.getpid()))
while not os.path.exists(os.environ["RELEASE"]):
    time.sleep(0.02)
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def model_dir(tmp_path):
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "train.py").write_text(TRIAL)
    return directory


@pytest.fixture
def executor(model_dir, tmp_path):
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=2)
    yield executor
    executor.shutdown(grace_seconds=1)


def launch(executor, tmp_path, trial_id, exit_status, release=False):
    """Start a trial that exits with `exit_status` once its release file exists (at once with `release`)."""
    if release:
        release_file(tmp_path, trial_id).touch()
    executor.launch(LaunchSpec(trial_id=trial_id, attempt=1, command=f"{sys.executable} train.py {exit_status}",
                               env={"HPT_TRIAL_ID": str(trial_id), "PID_FILE": str(tmp_path / f"pid-{trial_id}"),
                                    "RELEASE": str(release_file(tmp_path, trial_id))},
                               log_path=str(trial_log(tmp_path, trial_id))))


def release_file(tmp_path, trial_id):
    return tmp_path / f"release-{trial_id}"


def trial_log(tmp_path, trial_id):
    return tmp_path / f"trial-{trial_id}.log"


def wait_for(condition, what):
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not (value := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
    return value


def wait_for_exit(executor):
    (trial_exit,) = wait_for(executor.poll, "the trial's exit was never reported")
    return trial_exit


def start_warm(executor, tmp_path, trial_id):
    """Start the fork server (with a cold trial), then launch `trial_id` warm; returns its pid."""
    launch(executor, tmp_path, 100, 0, release=True)
    wait_for_exit(executor)
    wait_for(lambda: executor._fork_server.ready, "the fork server never became ready")
    launch(executor, tmp_path, trial_id, 3)
    assert executor.start_kinds[trial_id] == "warm"
    return int(wait_for(lambda: (tmp_path / f"pid-{trial_id}").exists() and
                        (tmp_path / f"pid-{trial_id}").read_text(), "the warm trial never started"))


def warm_start_notice(executor):
    """The executor's notice about warm starts, once it has one."""
    return wait_for(lambda: "".join(notice for notice in executor.notices() if notice.startswith("warm starts")),
                    "nobody said that trials start cold")


def kill_fork_server(executor):
    os.kill(executor._fork_server._process.pid, signal.SIGKILL)


def test_a_warm_trial_outliving_its_server_ends_with_its_own_exit_status_and_later_trials_start_cold(
        executor, tmp_path):
    start_warm(executor, tmp_path, 1)
    kill_fork_server(executor)
    notice = warm_start_notice(executor)
    assert "the fork server is gone" in notice and "trials start cold" in notice
    assert f"hpt: {notice}" in (tmp_path / "experiment" / "fork-server.log").read_text()
    assert executor.warm_start_state().startswith("cold: the fork server is gone")
    assert executor.running() == {1}

    release_file(tmp_path, 1).touch()
    assert wait_for_exit(executor).returncode == 3
    launch(executor, tmp_path, 2, 0, release=True)
    assert executor.start_kinds[2] == "cold"
    assert wait_for_exit(executor).returncode == 0


def test_a_warm_trial_killed_after_its_server_died_counts_as_a_crash(executor, tmp_path):
    pid = start_warm(executor, tmp_path, 1)
    kill_fork_server(executor)
    wait_for(lambda: "gone" in executor.warm_start_state(), "the fork server's death went unnoticed")
    os.killpg(pid, signal.SIGKILL)
    assert wait_for_exit(executor).returncode == UNKNOWN_EXIT_STATUS
    assert "it counts as a crash" in trial_log(tmp_path, 1).read_text()


def test_a_trial_launched_just_as_the_server_dies_starts_cold(executor, tmp_path):
    launch(executor, tmp_path, 100, 0, release=True)
    wait_for_exit(executor)
    wait_for(lambda: executor._fork_server.ready, "the fork server never became ready")
    kill_fork_server(executor)
    launch(executor, tmp_path, 1, 0, release=True)
    assert executor.start_kinds[1] == "cold"
    assert wait_for_exit(executor).returncode == 0


def test_trials_start_cold_when_the_server_dies_while_it_preloads(model_dir, executor, tmp_path, monkeypatch):
    package = tmp_path / "site" / "slowimport"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import os, time\n"  # slow in the server only, not in trials
                                         "if 'HPT_TRIAL_ID' not in os.environ:\n    time.sleep(600)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    (model_dir / "train.py").write_text("import slowimport\n" + TRIAL.replace("import numpy", "import json"))
    launch(executor, tmp_path, 1, 0, release=True)  # cold: it starts the server, which is importing slowimport
    wait_for_exit(executor)
    kill_fork_server(executor)
    notice = warm_start_notice(executor)
    assert "ended (exit status -9) before it was ready" in notice and "trials start cold" in notice
    launch(executor, tmp_path, 2, 0, release=True)
    assert executor.start_kinds[2] == "cold"
    assert wait_for_exit(executor).returncode == 0


def test_an_experiment_whose_fork_server_is_killed_mid_way_completes_every_trial(tmp_path):
    """Two warm trials are running their script when the server is killed; they finish (no restarts allowed),
    and the trials after them start cold. A hang fails the test through pytest-timeout (`timeout` in
    pyproject.toml)."""
    folder = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.2"})
    seen, output = {}, io.StringIO()
    view = ProgressView(experiment_id=0, metric="val_loss", stream=output)

    def kill_the_server_under_two_warm_trials(controller):
        executor = controller.executor
        warm_running = {trial for trial in executor.running() if executor.start_kinds.get(trial) == "warm"}
        if "killed" not in seen and len(warm_running) == 2 and \
                warm_running <= {entry["trial_id"] for entry in folder.log("start")}:
            kill_fork_server(executor)
            seen.update(killed=warm_running, starts_at_kill=dict(executor.starts), executor=executor)
        view.update(controller)

    run = folder.run(
        {"name": "random", "max_length": {"epochs": 5}, "max_trials": 8, "max_concurrent_trials": 2},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}},
        on_tick=kill_the_server_under_two_warm_trials, max_restarts=0)
    assert "killed" in seen
    assert run.state == "COMPLETED"
    assert [trial.state for trial in run.trials()] == ["COMPLETED"] * 8
    starts = seen["executor"].starts
    assert starts["warm"] == seen["starts_at_kill"]["warm"] and starts["cold"] > seen["starts_at_kill"]["cold"]
    experiment_dir = Path(run.storage.get_experiment(run.experiment_id).experiment_dir)
    assert "the fork server is gone" in (experiment_dir / "fork-server.log").read_text()
    assert "warm starts: the fork server is gone (exit status -9)" in output.getvalue()  # the controller's output
