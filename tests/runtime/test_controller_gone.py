"""A trial whose controller dies notices within seconds, checkpoints if it can, and exits."""

import json
import signal
import subprocess
import time
from pathlib import Path

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


def test_trial_checkpoints_and_exits_after_its_controller_is_killed(tmp_path):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.05"})
    config_path = experiments.write_file("exp", {"name": "single", "max_length": {"epochs": 1000}}, {"quality": 1.0})
    log_path = experiments.trial_log
    controller = experiments.start_hpt("experiment", "create", str(config_path), str(RUNTIME_MODEL), "--quiet",
                                       stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (log_path.exists() and '"report"' in log_path.read_text()):
            assert time.monotonic() < deadline and controller.poll() is None, "the trial never reported"
            time.sleep(0.1)
        trial_pid = json.loads(log_path.read_text().splitlines()[0])["pid"]
        controller.send_signal(signal.SIGKILL)
        controller.wait()
        deadline = time.monotonic() + 45
        while is_running(trial_pid):
            assert time.monotonic() < deadline, "the trial outlived its controller"
            time.sleep(0.2)
    finally:
        controller.kill()
        deadline = time.monotonic() + 30
        while processes_mentioning(tmp_path):  # the fork server goes with its controller too
            assert time.monotonic() < deadline, processes_mentioning(tmp_path)
            time.sleep(0.2)
    entries = experiments.log()
    assert entries[-1]["event"] == "exit"
    checkpoint = next(entry for entry in reversed(entries) if entry["event"] == "checkpoint")
    experiment_dir = Path(experiments.storage().get_experiment(1).experiment_dir)
    checkpoint_dirs = [path for path in (experiment_dir / "checkpoints").iterdir()]
    assert len(checkpoint_dirs) == 1 and not checkpoint_dirs[0].name.endswith(".partial")
    saved = json.loads((checkpoint_dirs[0] / "state.json").read_text())
    assert saved["epochs"] == checkpoint["epochs"] > 0
