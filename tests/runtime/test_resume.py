"""kill -9 of the controller loses nothing: `hpt experiment resume` continues exactly where it stopped.

With max_concurrent_trials: 1 the trials' metrics are a function of their hyperparameters and
lengths only, so a resumed experiment must end with the same operations, trials and outcome as
an uninterrupted run of the same seed.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parent / "model"

SEARCHERS = {
    "adaptive_asha": {"name": "adaptive_asha", "max_length": {"epochs": 4}, "max_trials": 4, "mode": "aggressive",
                      "divisor": 2},
    "pbt": {"name": "pbt", "population_size": 3, "num_rounds": 3, "length_per_round": {"epochs": 1},
            "replace_function": {"truncate_fraction": 0.34}},
}


def write_config(directory, searcher):
    config = {"entrypoint": f"{sys.executable} trial.py", "reproducibility": {"experiment_seed": 5},
              "searcher": {"metric": "val_loss", "max_concurrent_trials": 1, **SEARCHERS[searcher]},
              "hyperparameters": {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}}
    path = directory / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def environment(home, epoch_seconds=0.1):
    return {**os.environ, "HPT_HOME": str(home), "TRIAL_LOG": str(home / "trial-log.jsonl"),
            "EPOCH_SECONDS": str(epoch_seconds)}


def hpt(home, *args, epoch_seconds=0.1, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "hpt_core.cli", *args, "--quiet"],
                            env=environment(home, epoch_seconds),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def outcome(home):
    storage = Storage(f"sqlite:///{home}/hpt.db")
    operations = [record.payload for record in storage.searcher_records(1) if record.kind == "operation"]
    trials = [(t.request_id, t.hparams, t.state, t.end_reason, t.length_done, t.parent_request_id)
              for t in storage.list_trials(1)]
    return storage.get_experiment(1).state, operations, trials, storage


def processes_of(home):
    """Trial processes still alive under `home` (they work in a trial's directory there)."""
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd").startswith(f"{home}/experiments/"):
                if "/trials/" in os.readlink(entry / "cwd") and \
                        (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    alive.append(int(entry.name))
        except OSError:
            continue
    return alive


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    results = {}
    for searcher in SEARCHERS:
        home = tmp_path_factory.mktemp(f"uninterrupted-{searcher}")
        process = hpt(home, "experiment", "create", str(write_config(home, searcher)), str(MODEL_DIR))
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        results[searcher] = outcome(home)[:3]
    return results


@pytest.mark.parametrize("searcher, kill_after_records", [
    ("adaptive_asha", 4), ("adaptive_asha", 11), ("adaptive_asha", 17), ("pbt", 6), ("pbt", 16),
])
def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path, uninterrupted, searcher, kill_after_records):
    home = tmp_path / "home"
    home.mkdir()
    controller = hpt(home, "experiment", "create", str(write_config(home, searcher)), str(MODEL_DIR))
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline and controller.poll() is None, "the experiment ended before the kill"
        if (home / "hpt.db").exists():
            try:
                if len(Storage(f"sqlite:///{home}/hpt.db").searcher_records(1)) >= kill_after_records:
                    break
            except Exception:  # the schema may not exist yet
                pass
        time.sleep(0.05)
    controller.send_signal(signal.SIGKILL)
    controller.wait()
    state_after_kill, _, _, storage = outcome(home)
    assert state_after_kill == "ACTIVE"
    metrics_before = {(m.id, m.trial_id, m.kind, m.batches) for m in storage.metrics(experiment_id=1)}

    resumed = hpt(home, "experiment", "resume", "1")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output

    state, operations, trials, storage = outcome(home)
    expected_state, expected_operations, expected_trials = uninterrupted[searcher]
    assert state == expected_state == "COMPLETED"
    assert operations == expected_operations  # a fresh search method fed the events reproduced every operation
    assert trials == expected_trials  # no trial duplicated, none lost, the same outcome
    metrics_after = {(m.id, m.trial_id, m.kind, m.batches) for m in storage.metrics(experiment_id=1)}
    assert metrics_before <= metrics_after  # nothing reported before the kill is lost
    validations = [(m.trial_id, m.batches) for m in storage.metrics(experiment_id=1, kind="validation")]
    completed = {(t.id, t.length_done * 10) for t in storage.list_trials(1)}
    assert all(validations.count(key) == 1 for key in completed)  # no completed unit of work was redone
    logged = {(e["trial_id"], e["epochs"]) for e in map(json.loads, (home / "trial-log.jsonl").read_text().splitlines())
              if e["event"] == "checkpoint"}
    stored = {(c.trial_id, c.epochs) for c in storage.checkpoints(experiment_id=1, include_deleted=True)}
    assert logged <= stored  # every checkpoint a trial finished saving is registered, even during the outage
    assert processes_of(home) == []  # no trial process outlives its experiment


def test_resume_refuses_a_running_or_finished_experiment(tmp_path, uninterrupted):
    home = tmp_path / "home"
    home.mkdir()
    process = hpt(home, "experiment", "create", str(write_config(home, "adaptive_asha")), str(MODEL_DIR))
    process.communicate(timeout=300)
    again = hpt(home, "experiment", "resume", "1")
    output, _ = again.communicate(timeout=60)
    assert again.returncode == 2 and "has ended" in output


def test_pause_activate_and_cancel_a_detached_experiment(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # epochs of a second: the search cannot finish while the (slow, loaded) CLI commands below start
    created = hpt(home, "experiment", "create", str(write_config(home, "adaptive_asha")), str(MODEL_DIR),
                  "--detach", epoch_seconds=1.0)
    output, _ = created.communicate(timeout=60)
    assert created.returncode == 0 and "runs in the background" in output, output
    storage = Storage(f"sqlite:///{home}/hpt.db")
    wait_for(lambda: any(t.state == "RUNNING" for t in storage.list_trials(1)))

    assert run_quietly(home, "experiment", "pause", "1").returncode == 0
    wait_for(lambda: not processes_of(home) and all(t.state != "RUNNING" for t in storage.list_trials(1)))
    assert storage.get_experiment(1).state == "PAUSED"
    paused_trials = storage.list_trials(1)
    assert all(t.restarts == 0 for t in paused_trials)

    assert run_quietly(home, "experiment", "activate", "1").returncode == 0
    wait_for(lambda: any(t.state == "RUNNING" for t in storage.list_trials(1)))
    assert run_quietly(home, "experiment", "cancel", "1").returncode == 0
    wait_for(lambda: storage.get_experiment(1).controller_pid is None and not processes_of(home), timeout=60)
    assert storage.get_experiment(1).state == "CANCELED"
    assert all(t.state in ("CANCELED", "COMPLETED") for t in storage.list_trials(1))
    assert any(t.state == "CANCELED" for t in storage.list_trials(1))


def run_quietly(home, *args):
    return subprocess.run([sys.executable, "-m", "hpt_core.cli", *args], env=environment(home), capture_output=True,
                          text=True, timeout=60)


def wait_for(condition, timeout=90):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the experiment"
        time.sleep(0.1)
