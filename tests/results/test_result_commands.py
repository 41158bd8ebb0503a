"""`hpt experiment list|describe`, `hpt trial describe|logs`, `hpt checkpoint list` on a real finished experiment,
checked against the log that the trial script writes itself of every report and checkpoint."""

import json
import signal
import subprocess

from real_experiments import ExperimentFolder

from hpt_core.storage import Storage


def reports(log, trial_id, kind):
    return [(entry["batches"], entry["epochs"], entry["metrics"]) for entry in log
            if entry["event"] == "report" and entry["kind"] == kind and entry["trial_id"] == trial_id]


def checkpoints_logged(log, trial_id):
    return [entry["epochs"] for entry in log if entry["event"] == "checkpoint" and entry["trial_id"] == trial_id]


def test_describe_json_agrees_with_the_trials_own_log(finished):
    result = finished.hpt("experiment", "describe", str(finished.experiment_id), "--json")
    assert result.returncode == 0, result.stderr
    description = json.loads(result.stdout)
    log = finished.log()
    assert description["state"] == finished.state == "COMPLETED"
    assert len(description["trials"]) == 4
    best = None
    for trial in description["trials"]:
        validations = [{"value": metrics["val_loss"], "batches": batches, "epochs": epochs}
                       for batches, epochs, metrics in reports(log, trial["id"], "validation")]
        assert validations, trial
        assert trial["latest_validation"] == validations[-1]
        assert trial["best_validation"] == min(validations, key=lambda validation: validation["value"])
        assert [(c["epochs"], c["batches"]) for c in trial["checkpoints"]] == [
            (epochs, epochs * 10) for epochs in checkpoints_logged(log, trial["id"])]
        starts = [entry for entry in log if entry["event"] == "start" and entry["trial_id"] == trial["id"]]
        assert trial["restarts"] == len(starts) - 1 == (1 if trial["hparams"]["behaviour"] == "die_once" else 0)
        assert (trial["state"], trial["length_trained"]) == ("COMPLETED", 3)
        if best is None or trial["best_validation"]["value"] < best[0]:
            best = (trial["best_validation"]["value"], trial["id"])
    assert description["best_trial"] == best[1]


def test_trial_describe_json_lists_every_report_and_checkpoint_the_trial_made(finished):
    log = finished.log()
    storage = finished.storage
    trial_ids = [trial.id for trial in storage.list_trials(finished.experiment_id)]
    for trial_id in trial_ids:
        result = finished.hpt("trial", "describe", str(trial_id), "--json")
        assert result.returncode == 0, result.stderr
        described = json.loads(result.stdout)
        assert described["id"] == trial_id and described["metric"] == "val_loss"
        for kind, key in (("validation", "validations"), ("training", "training")):
            assert [(r["batches"], r["epochs"], r["metrics"]) for r in described[key]] == reports(log, trial_id, kind)
        assert [c["epochs"] for c in described["checkpoints"]] == checkpoints_logged(log, trial_id)
        validation_at_30 = reports(log, trial_id, "validation")[-1][2]
        for checkpoint in described["checkpoints"]:
            assert checkpoint["validation"] == (validation_at_30 if checkpoint["batches"] == 30 else None)
        assert described["latest_checkpoint"]["batches"] == described["best_checkpoint"]["batches"] == 30


def test_trial_describe_prints_the_trial_its_validations_and_checkpoints(finished):
    storage = finished.storage
    trial = storage.list_trials(finished.experiment_id)[0]
    checkpoints = storage.checkpoints(trial_id=trial.id)
    result = finished.hpt("trial", "describe", str(trial.id))
    assert result.returncode == 0, result.stderr
    assert f"trial {trial.id} (#{trial.request_id} in experiment {finished.experiment_id})" in result.stdout
    assert f"quality={trial.hparams['quality']}" in result.stdout
    assert "validations" in result.stdout and "val_loss" in result.stdout
    for checkpoint in checkpoints:
        assert checkpoint.id in result.stdout  # whole, even on an 80-column pipe


def test_experiment_list_shows_every_experiment(finished):
    result = finished.hpt("experiment", "list", "--json")
    assert result.returncode == 0, result.stderr
    (entry,) = [entry for entry in json.loads(result.stdout) if entry["id"] == finished.experiment_id]
    assert (entry["name"], entry["state"], entry["searcher"], entry["trials"]) == ("results", "COMPLETED", "grid", 4)
    table = finished.hpt("experiment", "list")
    assert table.returncode == 0 and "results" in table.stdout and "COMPLETED" in table.stdout


def test_checkpoint_list_shows_each_checkpoint_with_its_step_and_metric(finished):
    storage = finished.storage
    checkpoints = storage.checkpoints(experiment_id=finished.experiment_id)
    result = finished.hpt("checkpoint", "list", str(finished.experiment_id), "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [(c["id"], c["trial_id"], c["batches"]) for c in listed] == [(c.id, c.trial_id, c.batches)
                                                                       for c in checkpoints]
    table = finished.hpt("checkpoint", "list", str(finished.experiment_id))
    assert table.returncode == 0 and "val_loss at its step" in table.stdout
    assert all(checkpoint.id in table.stdout for checkpoint in checkpoints)


def test_trial_logs_prints_the_output_of_every_attempt(finished):
    storage = finished.storage
    dying = next(trial for trial in storage.list_trials(finished.experiment_id)
                 if trial.hparams["behaviour"] == "die_once")
    result = finished.hpt("trial", "logs", str(dying.id))
    assert result.returncode == 0, result.stderr
    assert "=== attempt 1 started" in result.stdout and "=== attempt 2 started" in result.stdout


def test_unknown_ids_are_errors_without_a_traceback(finished):
    for args in (("trial", "describe", "9999"), ("trial", "logs", "9999"), ("checkpoint", "list", "9999"),
                 ("experiment", "download", "9999")):
        result = finished.hpt(*args)
        assert result.returncode == 2, args
        assert result.stderr.startswith("error: ") and "9999 does not exist" in result.stderr
        assert "Traceback" not in result.stderr


# --- following a trial's output -------------------------------------------------------------------


def running_trial(tmp_path):
    """A RUNNING trial in storage whose output.log already holds one line (the test writes what a trial would)."""
    storage_url = f"sqlite:///{tmp_path}/hpt.db"
    storage = Storage(storage_url)
    experiment_id = storage.create_experiment(name="follow", config={"searcher": {"name": "single"}},
                                              model_dir=str(tmp_path), seed=1, secret="s")
    storage.set_experiment_dir(experiment_id, str(tmp_path / "experiment"))
    trial_id = storage.create_trial(experiment_id, 1, {}, seed=1)
    storage.update_trial(trial_id, state="RUNNING")
    log = tmp_path / "experiment" / "trials" / str(trial_id) / "output.log"
    log.parent.mkdir(parents=True)
    log.write_text("first line\n")
    return storage, storage_url, trial_id, log


def follow(tmp_path, storage_url, trial_id):
    return ExperimentFolder(tmp_path, storage_url=storage_url).start_hpt(
        "trial", "logs", str(trial_id), "--follow", stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_trial_logs_follow_prints_new_output_until_the_trial_ends(tmp_path):
    storage, storage_url, trial_id, log = running_trial(tmp_path)
    process = follow(tmp_path, storage_url, trial_id)
    try:
        assert process.stdout.readline() == "first line\n"
        with open(log, "a") as handle:
            handle.write("second line\n")
        assert process.stdout.readline() == "second line\n"
        with open(log, "a") as handle:
            handle.write("last words\n")
        storage.update_trial(trial_id, state="COMPLETED")
        rest, errors = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, errors
    assert rest == "last words\n"


def test_trial_logs_follow_stops_quietly_on_ctrl_c(tmp_path):
    storage, storage_url, trial_id, _ = running_trial(tmp_path)
    process = follow(tmp_path, storage_url, trial_id)
    try:
        assert process.stdout.readline() == "first line\n"
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and "Traceback" not in errors


def test_trial_logs_of_a_trial_that_has_not_started_says_so(tmp_path):
    storage = Storage(f"sqlite:///{tmp_path}/hpt.db")
    experiment_id = storage.create_experiment(name="x", config={"searcher": {"name": "single"}},
                                              model_dir=str(tmp_path), seed=1, secret="s")
    storage.set_experiment_dir(experiment_id, str(tmp_path / "experiment"))
    trial_id = storage.create_trial(experiment_id, 1, {}, seed=1)
    result = ExperimentFolder(tmp_path, storage_url=storage.url).hpt("trial", "logs", str(trial_id))
    assert result.returncode == 0 and result.stdout == ""
    assert f"trial {trial_id} has written no output yet (PENDING)" in result.stderr
