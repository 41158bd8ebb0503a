"""A trial whose controller dies keeps what it reports: each report call waits (saying so in the trial's
output) until a resumed controller stores it, exactly once, or until the trial's time limit ends the wait."""

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from hpt_core.channel_server import SocketChannelServer
from real_experiments import RUNTIME_MODEL, ExperimentFolder


def is_running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def processes_mentioning(path):
    """Live processes whose command line names something under `path`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(path).encode() in (entry / "cmdline").read_bytes() and is_running(entry.name):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for(condition, seconds, message):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def start_and_kill_its_controller(experiments, config_path, reports_before_kill=3):
    """Start the experiment, kill -9 its controller once the trial has reported; the trial's pid."""
    controller = experiments.start_hpt("experiment", "create", str(config_path), str(RUNTIME_MODEL), "--quiet",
                                       stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(experiments.log("report")) >= reports_before_kill or controller.poll() is not None, 60,
                 "the trial never reported")
        assert controller.poll() is None
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait()
    return experiments.log("start")[0]["pid"]


def trial_output(experiments):
    with experiments.storage() as storage:
        experiment_dir = Path(storage.get_experiment(1).experiment_dir)
    return (experiment_dir / "trials" / "1" / "output.log").read_text()


def channel_addresses(experiments):
    with experiments.storage() as storage:
        return json.loads((Path(storage.get_experiment(1).experiment_dir) / "channel.json").read_text())


def test_reports_made_while_the_controller_is_dead_are_stored_exactly_once_after_resume(tmp_path):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.2"})
    config_path = experiments.write_file("exp", {"name": "single", "max_length": {"epochs": 25}}, {"quality": 1.0})
    trial_pid = start_and_kill_its_controller(experiments, config_path)
    wait_for(lambda: "does not answer" in trial_output(experiments), 30, "the trial did not say it waits")
    time.sleep(1.0)
    assert is_running(trial_pid)  # it waits for a controller rather than losing its report
    left_behind = Path(channel_addresses(experiments)["local_url"].removeprefix("unix://"))
    assert left_behind.exists()  # the killed controller could not remove its socket
    resumed = experiments.hpt("experiment", "resume", "1", "--quiet", timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not left_behind.parent.exists()  # the resumed controller removed it
    with experiments.storage() as storage:
        stored = storage.metrics(experiment_id=1)
        assert storage.get_experiment(1).state == "COMPLETED"
    returned = [(entry["attempt"], entry["kind"], entry["batches"]) for entry in experiments.log("report")]
    kept = Counter((record.attempt, record.kind, record.batches) for record in stored)
    assert all(kept[report] == 1 for report in returned), [report for report in returned if kept[report] != 1]
    assert max(kept.values()) == 1
    assert len({(record.attempt, record.seq) for record in stored}) == len(stored)
    assert ("validation", 250) in {(record.kind, record.batches) for record in stored}
    assert "answered by the controller" in trial_output(experiments)


def test_a_trial_whose_controller_never_returns_gives_up_at_its_time_limit(tmp_path):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.2"})
    config_path = experiments.write_file("exp", {"name": "single", "max_length": {"epochs": 1000}}, {"quality": 1.0},
                                         max_trial_time=8)
    trial_pid = start_and_kill_its_controller(experiments, config_path)
    try:
        wait_for(lambda: not is_running(trial_pid), 45, "the trial outlived its time limit")
    finally:
        wait_for(lambda: not processes_mentioning(tmp_path), 30, "processes of the experiment are left")
        SocketChannelServer.remove_left_behind(channel_addresses(experiments)["local_url"])  # nobody resumes it
    output = trial_output(experiments)
    assert "does not answer" in output and "gave up on report" in output
    assert json.loads(experiments.trial_log.read_text().splitlines()[-1])["event"] == "report"
