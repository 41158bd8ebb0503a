"""kill -9 of the controller loses nothing: `hpt experiment resume` continues exactly where it stopped.

With max_concurrent_trials: 1 the trials' metrics are a function of their hyperparameters and
lengths only, so a resumed experiment must end with the same operations, trials and outcome as
an uninterrupted run of the same seed.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from real_experiments import RUNTIME_MODEL, ExperimentFolder

SEARCHERS = {
    "adaptive_asha": {"name": "adaptive_asha", "max_length": {"epochs": 4}, "max_trials": 4, "mode": "aggressive",
                      "divisor": 2},
    "pbt": {"name": "pbt", "population_size": 3, "num_rounds": 3, "length_per_round": {"epochs": 1},
            "replace_function": {"truncate_fraction": 0.34}},
}


def create(experiments, searcher, *options):
    """Start `hpt experiment create` of the search `searcher`, one trial at a time, seed 5."""
    path = experiments.write_file("exp", {"max_concurrent_trials": 1, **SEARCHERS[searcher]},
                                  {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}, seed=5)
    return hpt(experiments, "experiment", "create", str(path), str(RUNTIME_MODEL), *options)


def hpt(experiments, *args):
    return experiments.start_hpt(*args, "--quiet", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def outcome(experiments):
    storage = experiments.storage()
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
        experiments = ExperimentFolder(tmp_path_factory.mktemp(f"uninterrupted-{searcher}"),
                                       variables={"EPOCH_SECONDS": "0.1"})
        process = create(experiments, searcher)
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        results[searcher] = outcome(experiments)[:3]
    return results


@pytest.mark.parametrize("searcher, kill_after_records", [
    ("adaptive_asha", 4), ("adaptive_asha", 11), ("adaptive_asha", 17), ("pbt", 6), ("pbt", 16),
])
def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path, uninterrupted, searcher, kill_after_records):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.1"})
    home = experiments.home
    controller = create(experiments, searcher)
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline and controller.poll() is None, "the experiment ended before the kill"
        if (home / "hpt.db").exists():
            try:
                if len(experiments.storage().searcher_records(1)) >= kill_after_records:
                    break
            except Exception:  # the schema may not exist yet
                pass
        time.sleep(0.05)
    controller.send_signal(signal.SIGKILL)
    controller.wait()
    state_after_kill, _, _, storage = outcome(experiments)
    assert state_after_kill == "ACTIVE"
    metrics_before = {(m.id, m.trial_id, m.kind, m.batches) for m in storage.metrics(experiment_id=1)}

    resumed = hpt(experiments, "experiment", "resume", "1")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output

    state, operations, trials, storage = outcome(experiments)
    expected_state, expected_operations, expected_trials = uninterrupted[searcher]
    assert state == expected_state == "COMPLETED"
    assert operations == expected_operations  # a fresh search method fed the events reproduced every operation
    assert trials == expected_trials  # no trial duplicated, none lost, the same outcome
    metrics_after = {(m.id, m.trial_id, m.kind, m.batches) for m in storage.metrics(experiment_id=1)}
    assert metrics_before <= metrics_after  # nothing reported before the kill is lost
    validations = [(m.trial_id, m.batches) for m in storage.metrics(experiment_id=1, kind="validation")]
    completed = {(t.id, t.length_done * 10) for t in storage.list_trials(1)}
    assert all(validations.count(key) == 1 for key in completed)  # no completed unit of work was redone
    logged = {(e["trial_id"], e["epochs"]) for e in experiments.log("checkpoint")}
    stored = {(c.trial_id, c.epochs) for c in storage.checkpoints(experiment_id=1, include_deleted=True)}
    assert logged <= stored  # every checkpoint a trial finished saving is registered, even during the outage
    assert processes_of(home) == []  # no trial process outlives its experiment


def test_resume_refuses_a_running_or_finished_experiment(tmp_path, uninterrupted):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.1"})
    process = create(experiments, "adaptive_asha")
    process.communicate(timeout=300)
    again = hpt(experiments, "experiment", "resume", "1")
    output, _ = again.communicate(timeout=60)
    assert again.returncode == 2 and "has ended" in output


def test_pause_activate_and_cancel_a_detached_experiment(tmp_path):
    # epochs of a second: the search cannot finish while the (slow, loaded) CLI commands below start
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "1.0"})
    home = experiments.home
    created = create(experiments, "adaptive_asha", "--detach")
    output, _ = created.communicate(timeout=60)
    assert created.returncode == 0 and "runs in the background" in output, output
    storage = experiments.storage()
    wait_for(lambda: any(t.state == "RUNNING" for t in storage.list_trials(1)))

    assert experiments.hpt("experiment", "pause", "1", timeout=60).returncode == 0
    wait_for(lambda: not processes_of(home) and all(t.state != "RUNNING" for t in storage.list_trials(1)))
    assert storage.get_experiment(1).state == "PAUSED"
    paused_trials = storage.list_trials(1)
    assert all(t.restarts == 0 for t in paused_trials)

    assert experiments.hpt("experiment", "activate", "1", timeout=60).returncode == 0
    wait_for(lambda: any(t.state == "RUNNING" for t in storage.list_trials(1)))
    assert experiments.hpt("experiment", "cancel", "1", timeout=60).returncode == 0
    wait_for(lambda: storage.get_experiment(1).controller_pid is None and not processes_of(home), timeout=60)
    assert storage.get_experiment(1).state == "CANCELED"
    assert all(t.state in ("CANCELED", "COMPLETED") for t in storage.list_trials(1))
    assert any(t.state == "CANCELED" for t in storage.list_trials(1))


def wait_for(condition, timeout=90):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the experiment"
        time.sleep(0.1)
