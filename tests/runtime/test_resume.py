"""kill -9 of the controller loses nothing: `hpt experiment resume` continues exactly where it stopped.

A chaos test: the controller of a PBT run and of an adaptive ASHA run with the TPE sampler is killed at
seeded points (and at the moment PBT's first child starts), every other search method at one, then
resumed. With max_concurrent_trials: 1
a trial's metrics are a function of its hyperparameters, lengths and the weights it restored (the trial
carries a weight through its checkpoints), so the resumed experiment must end with the operations,
trials, lengths, metrics, checkpoints and best of an uninterrupted run of the same seed. A search method
that changed before the resume (its code edited, or hpt upgraded) is refused, losing nothing; the one that
began the experiment then continues it as if nothing had happened.
"""

import json
import os
import random
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from real_experiments import RUNTIME_MODEL, ExperimentFolder

SEARCHERS = {
    "adaptive_asha_tpe": {"name": "adaptive_asha", "max_length": {"epochs": 2}, "max_trials": 12, "divisor": 2,
                          "mode": "aggressive", "sampler": "tpe"},
    "adaptive_asha_gp": {"name": "adaptive_asha", "max_length": {"epochs": 2}, "max_trials": 12, "divisor": 2,
                         "mode": "aggressive", "sampler": "gp", "fidelity": "adaptive"},
    "pbt": {"name": "pbt", "population_size": 3, "num_rounds": 2, "length_per_round": {"epochs": 2},
            "replace_function": {"truncate_fraction": 0.34}},
    "single": {"name": "single", "max_length": {"epochs": 4}},
    "grid": {"name": "grid", "max_length": {"epochs": 2}},
    "random": {"name": "random", "max_length": {"epochs": 2}, "max_trials": 3},
    "adaptive_asha": {"name": "adaptive_asha", "max_length": {"epochs": 4}, "max_trials": 4, "divisor": 2,
                      "mode": "aggressive"},
    "custom": {"name": "custom", "class": "hpt_core.searchers:RandomSearch", "max_length": {"epochs": 2},
               "max_trials": 3},
}
CHAOS = ("adaptive_asha_tpe", "pbt")
"""Killed at `KILL_POINTS` seeded points; every other search method at one."""
KILL_POINTS = 5
PBT_FIRST_CHILD = "the first PBT child's attempt 1 started"


def folder(path, epoch_seconds="0.05"):
    return ExperimentFolder(path, variables={"EPOCH_SECONDS": epoch_seconds})


def create(experiments, searcher, *options, variables=None, **fields):
    """Start `hpt experiment create` of the search `searcher` (with these searcher `fields` instead of its own), one
    trial at a time, seed 5."""
    quality = {"type": "categorical", "vals": [0.3, 1.0, 1.7]} if searcher == "grid" else \
        {"type": "double", "minval": 0.1, "maxval": 2.0}
    path = experiments.write_file("exp", {"max_concurrent_trials": 1, **SEARCHERS[searcher], **fields},
                                  {"quality": quality}, seed=5)
    return hpt(experiments, "experiment", "create", str(path), str(RUNTIME_MODEL), *options, variables=variables)


def hpt(experiments, *args, variables=None):
    return experiments.start_hpt(*args, "--quiet", variables=variables, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)


def outcome(experiments):
    """What must not depend on a crash: state, operations, trials, distinct metrics, checkpoints, best."""
    storage = experiments.storage()
    operations = [record.payload for record in storage.searcher_records(1) if record.kind == "operation"]
    trials = storage.list_trials(1)
    request_of = {trial.id: trial.request_id for trial in trials}
    metrics = {(request_of[m.trial_id], m.kind, m.epochs, json.dumps(m.metrics, sort_keys=True))
               for m in storage.metrics(experiment_id=1)}
    checkpoints = {(request_of[c.trial_id], c.epochs) for c in storage.checkpoints(experiment_id=1,
                                                                                    include_deleted=True)}
    validations = storage.metrics(experiment_id=1, kind="validation")
    best = min(validations, key=lambda m: (m.metrics["val_loss"], m.id)) if validations else None
    return {"state": storage.get_experiment(1).state, "operations": operations,
            "trials": [(t.request_id, t.hparams, t.state, t.end_reason, t.length_done, t.length_trained,
                        t.parent_request_id) for t in trials],
            "metrics": metrics, "checkpoints": checkpoints,
            "best": None if best is None else (request_of[best.trial_id], best.metrics["val_loss"]),
            "storage": storage}


def validation_metrics(outcome):
    return {metric for metric in outcome["metrics"] if metric[1] == "validation"}


def last_seq(experiments):
    """The seq of the newest searcher record (0 before there is one)."""
    try:
        records = experiments.storage().searcher_records(1)
    except Exception:  # the database or its schema may not exist yet
        return 0
    return records[-1].seq if records else 0


def last_wait(experiments):
    """The seq of the last searcher record before the experiment's last validation: the controller waits for a
    trial there, so a kill point at or before it is reached while the experiment runs (after it the controller
    closes and shuts down within milliseconds, faster than `kill_when` can look)."""
    return max(record.seq for record in experiments.storage().searcher_records(1)
               if record.kind == "event" and record.payload["name"] == "on_validation_completed") - 1


def first_child_started(home):
    """PBT's first child (trial 4: members 1-3, then the clone of the best) has its attempt 1 started."""
    return any("=== attempt 1 started" in log.read_text() for log in home.glob("experiments/*/trials/4/output.log"))


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
        experiments = folder(tmp_path_factory.mktemp(f"uninterrupted-{searcher}"))
        process = create(experiments, searcher)
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        results[searcher] = {**outcome(experiments), "last_wait": last_wait(experiments)}
    return results


def kill_points(searcher):
    """Seeded points, as fractions of the uninterrupted run's searcher record up to its last wait."""
    draw = random.Random(f"chaos-{searcher}")
    return [(searcher, round(draw.uniform(0.05, 0.95), 2)) for _ in range(KILL_POINTS if searcher in CHAOS else 1)]


@pytest.mark.parametrize("searcher, kill_at", [*(point for searcher in SEARCHERS for point in kill_points(searcher)),
                                               ("pbt", PBT_FIRST_CHILD)])
def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path, uninterrupted, searcher, kill_at):
    expected = uninterrupted[searcher]
    experiments = folder(tmp_path)
    home = experiments.home
    if kill_at == PBT_FIRST_CHILD:
        due = lambda: first_child_started(home)  # noqa: E731
    else:
        seq = 2 + round(kill_at * (expected["last_wait"] - 2))
        due = lambda: last_seq(experiments) >= seq  # noqa: E731
    kill_when(create(experiments, searcher), due)
    before = outcome(experiments)
    assert before["state"] == "ACTIVE"

    resumed = hpt(experiments, "experiment", "resume", "1")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert_ends_as(expected, experiments, before)


def kill_when(controller, due, timeout=120):
    """kill -9 the controller once `due()` holds; checked again while the controller is stopped, so that what
    `due` read from storage is still all there is when it dies."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline and controller.poll() is None, "the experiment ended before the kill"
        if due():
            controller.send_signal(signal.SIGSTOP)
            if due():
                break
            controller.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    controller.send_signal(signal.SIGKILL)
    controller.wait()


def assert_ends_as(expected, experiments, before):
    """The resumed experiment ended as the uninterrupted run `expected` did, keeping what was recorded `before`."""
    after = outcome(experiments)
    assert after["state"] == expected["state"] == "COMPLETED"
    assert after["operations"] == expected["operations"]  # the search method decided exactly as before
    assert after["trials"] == expected["trials"]  # no trial duplicated or lost; the same ends and lengths
    # The same values (every restore was right); besides them, a trial that was cut off validated once more
    # when the resumed controller told it to stop, at a length the search method had not asked for.
    assert validation_metrics(expected) <= validation_metrics(after)
    asked = {(request, epochs) for request, _, epochs, _ in validation_metrics(expected)}
    extra = validation_metrics(after) - validation_metrics(expected)
    assert all((request, epochs) not in asked for request, _, epochs, _ in extra)
    # A report made while no controller listened was received by the resumed one, exactly once.
    assert after["metrics"] - validation_metrics(after) == expected["metrics"] - validation_metrics(expected)
    assert before["metrics"] <= after["metrics"]  # nothing reported before the kill is lost
    assert expected["checkpoints"] <= after["checkpoints"]
    assert after["best"] == expected["best"]
    storage = after["storage"]
    validations = [(m.trial_id, m.epochs) for m in storage.metrics(experiment_id=1, kind="validation")]
    assert len(validations) == len(set(validations))  # no completed unit of work was redone
    logged = {(e["trial_id"], e["epochs"]) for e in experiments.log("checkpoint")}
    stored = {(c.trial_id, c.epochs) for c in storage.checkpoints(experiment_id=1, include_deleted=True)}
    assert logged <= stored  # every checkpoint a trial finished saving is registered, even during the outage
    assert processes_of(experiments.home) == []  # no trial process outlives its experiment


CHANGING_SEARCH = '''"""A user's search method: RandomSearch, unless HALVE_QUALITY (an "upgrade") halves the quality."""
from hpt_core.searchers import RandomSearch

HALVE_QUALITY = {halve_quality}


class ChangingSearch(RandomSearch):
    def propose_hparams(self):
        hparams = super().propose_hparams()
        return {{**hparams, "quality": hparams["quality"] / 2}} if HALVE_QUALITY else hparams
'''


def write_changing_search(directory, halve_quality):
    directory.mkdir(exist_ok=True)
    (directory / "changing_search.py").write_text(CHANGING_SEARCH.format(halve_quality=halve_quality))


def first_replayed_create(experiments):
    """The seq of the event that led to the first Create recorded after the latest snapshot (0 while there is none):
    the record at which a resume stops when the search method now proposes differently."""
    try:
        records = experiments.storage().searcher_records(1)
    except Exception:  # the database or its schema may not exist yet
        return 0
    snapshot = max((record.seq for record in records if record.kind == "snapshot"), default=0)
    event = 0
    for record in records:
        if record.seq > snapshot and record.kind == "event":
            event = record.seq
        elif record.seq > snapshot and record.payload["type"] == "Create":
            return event
    return 0


def test_a_changed_search_method_is_refused_losing_nothing_and_the_one_that_began_the_experiment_continues_it(
        tmp_path, uninterrupted):
    experiments = folder(tmp_path)
    user_code = tmp_path / "user_code"
    write_changing_search(user_code, halve_quality=False)
    importable = {"PYTHONPATH": os.pathsep.join([str(user_code), os.environ.get("PYTHONPATH", "")]),
                  "PYTHONDONTWRITEBYTECODE": "1"}  # each `hpt` imports the module as it is now
    controller = create(experiments, "custom", variables=importable, **{"class": "changing_search:ChangingSearch"})
    kill_when(controller, lambda: first_replayed_create(experiments) > 0 and  # then the database exists
              experiments.storage().metrics(experiment_id=1, kind="validation"))
    before = outcome(experiments)
    assert before["state"] == "ACTIVE"

    write_changing_search(user_code, halve_quality=True)
    refused = hpt(experiments, "experiment", "resume", "1", variables=importable)
    output, _ = refused.communicate(timeout=300)
    assert refused.returncode == 1, output
    assert f"error: record {first_replayed_create(experiments)}: the search method produced other operations " \
           "for " in output
    assert "\nthe search method (its code, or hpt's version) no longer behaves as the one that recorded this " \
           "experiment; resume the experiment with the version that began it\nexperiment 1 is PAUSED" in output
    assert "the controller failed" not in output and "Traceback" not in output
    assert processes_of(experiments.home) == []
    kept = outcome(experiments)
    assert kept["state"] == "PAUSED"
    assert kept["operations"] == before["operations"]  # the changed search method recorded nothing
    # and created no trial: the same (request id, hparams) of each (a report that the killed controller's trial
    # delivered meanwhile may have lengthened one); those that ran when it was killed are stopped and PAUSED
    assert [trial[:2] for trial in kept["trials"]] == [trial[:2] for trial in before["trials"]]
    assert [trial[2] for trial in kept["trials"]] == [
        "PAUSED" if trial[2] == "RUNNING" else trial[2] for trial in before["trials"]]
    assert before["metrics"] <= kept["metrics"] and before["checkpoints"] <= kept["checkpoints"]

    write_changing_search(user_code, halve_quality=False)
    assert experiments.hpt("experiment", "activate", "1", timeout=60).returncode == 0
    resumed = hpt(experiments, "experiment", "resume", "1", variables=importable)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert_ends_as(uninterrupted["custom"], experiments, before)


def test_resume_refuses_a_running_or_finished_experiment(tmp_path, uninterrupted):
    experiments = folder(tmp_path)
    process = create(experiments, "pbt")
    process.communicate(timeout=300)
    again = hpt(experiments, "experiment", "resume", "1")
    output, _ = again.communicate(timeout=60)
    assert again.returncode == 2 and "has ended" in output


def test_pause_activate_and_cancel_a_detached_experiment(tmp_path):
    # epochs of a second: the search cannot finish while the (slow, loaded) CLI commands below start
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "1.0"})
    home = experiments.home
    created = create(experiments, "adaptive_asha_tpe", "--detach")
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
    wait_for(lambda: storage.lease(1) is None and not processes_of(home), timeout=60)
    assert storage.get_experiment(1).state == "CANCELED"
    assert all(t.state in ("CANCELED", "COMPLETED") for t in storage.list_trials(1))
    assert any(t.state == "CANCELED" for t in storage.list_trials(1))
    experiment_dir = Path(storage.get_experiment(1).experiment_dir)
    private_files = [home / "hpt.db", home / "hpt.db-wal", experiment_dir / "controller.log",
                     *(experiment_dir / "trials").glob("*/output.log")]
    assert len(private_files) > 3
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in private_files} == {
        path.name: 0o600 for path in private_files}
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def wait_for(condition, timeout=90):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the experiment"
        time.sleep(0.1)
