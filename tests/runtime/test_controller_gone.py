"""A trial whose controller dies notices within seconds, checkpoints if it can, and exits."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

MODEL_DIR = Path(__file__).parent / "model"


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
    config = {"entrypoint": f"{sys.executable} trial.py", "searcher": {"name": "single", "metric": "val_loss",
              "max_length": {"epochs": 1000}}, "hyperparameters": {"quality": 1.0}}
    config_path = tmp_path / "exp.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "trial-log.jsonl"
    env = {**os.environ, "HPT_HOME": str(tmp_path / "home"), "TRIAL_LOG": str(log_path), "EPOCH_SECONDS": "0.05"}
    controller = subprocess.Popen([sys.executable, "-m", "hpt_core.cli", "experiment", "create", str(config_path),
                                   str(MODEL_DIR), "--quiet"], env=env, stdout=subprocess.DEVNULL)
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
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert entries[-1]["event"] == "exit"
    checkpoint = next(entry for entry in reversed(entries) if entry["event"] == "checkpoint")
    checkpoint_dirs = [path for path in (tmp_path / "home" / "experiments" / "1" / "checkpoints").iterdir()]
    assert len(checkpoint_dirs) == 1 and not checkpoint_dirs[0].name.endswith(".partial")
    saved = json.loads((checkpoint_dirs[0] / "state.json").read_text())
    assert saved["epochs"] == checkpoint["epochs"] > 0
