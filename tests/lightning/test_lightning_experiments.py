"""Real Lightning training inside real experiments: reports, pauses and resumes, early stopping, restarts,
invalid hyperparameters, and, with DDP on two processes, single trials, ASHA pauses and PBT warm starts.

Each experiment runs `model/lightning_trial.py` (a tiny classifier on scikit-learn's digits, 4 training
batches per epoch, logging with `sync_dist=True` and torchmetrics objects) in real trial processes;
the trial's `Probe` callback logs what its Trainer did, per rank. Every experiment runs under a
timeout: one that hangs is cancelled, and its test fails.
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from real_experiments import ExperimentFolder, ExperimentRun, hold_until_preloaded

from hpt_core.executors.local import recorded_start
from hpt_lightning import CHECKPOINT_FILE

MODEL_DIR = Path(__file__).parent / "model"
BATCHES_PER_EPOCH = 4
TIMEOUT_SECONDS = 240
TRAINING_NAMES = {"loss", "train_marker", "step_marker", "train_marker_metric"}
VALIDATION_NAMES = {"val_loss", "val_accuracy", "val_marker", "val_marker_metric"}


def experiments_in(directory):
    """A folder of experiments of `lightning_trial.py` with 1 restart and seed 1 (unless a test gives others)."""
    return ExperimentFolder(directory, MODEL_DIR, "lightning_trial.py",
                            defaults={"max_restarts": 1, "reproducibility": {"experiment_seed": 1}})


@dataclass
class TimedRun(ExperimentRun):
    """A run that says whether it was cancelled for running past `TIMEOUT_SECONDS`."""

    timed_out: bool = False


def run_experiment(directory, searcher, hyperparameters, **fields):
    """Run an experiment of `lightning_trial.py` in `directory` to its end.

    An experiment still running after TIMEOUT_SECONDS is cancelled (its trials get SIGTERM, then
    SIGKILL) and comes back with `timed_out`: a trial that hangs fails its test instead of the suite.
    """
    started, late = time.monotonic(), []

    def cancel_when_late(controller):
        if not late and time.monotonic() - started > TIMEOUT_SECONDS:
            late.append(True)
            controller.cancel()

    run = experiments_in(directory).run(searcher, hyperparameters, on_tick=cancel_when_late, **fields)
    return TimedRun(**vars(run), timed_out=bool(late))


def checkpoint_state(checkpoint):
    return torch.load(Path(checkpoint.path) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)


def epoch_index(metrics):
    """The epoch (from 0) in which a report's last batch was trained: the epoch its metrics were logged in."""
    return math.ceil(metrics.batches / BATCHES_PER_EPOCH) - 1


def assert_reports_hold_their_own_metrics(experiment, trial, processes):
    """One validation report per validation of rank 0, holding only validation metrics; training reports
    holding only training metrics; each value reduced over the `processes` ranks (a marker is its epoch plus
    the ranks' mean) and stored against the batches and epochs it was logged at."""
    rank_mean = (processes - 1) / 2
    validations = experiment.metrics(trial, "validation")
    validated = experiment.log("validation", trial_id=trial.id, rank=0)
    assert len(validations) == len(validated) > 0
    assert len(experiment.log("validation", trial_id=trial.id)) == processes * len(validated)  # every rank validated
    assert [m.metrics["val_loss"] for m in validations] == pytest.approx([e["val_loss"] for e in validated])
    for report in validations:
        assert set(report.metrics) == VALIDATION_NAMES
        assert report.metrics["val_marker"] == report.metrics["val_marker_metric"] == \
            pytest.approx(epoch_index(report) + rank_mean)
    trainings = experiment.metrics(trial, "training")
    assert trainings
    for report in trainings:
        assert set(report.metrics) <= TRAINING_NAMES and "step_marker" in report.metrics
        for name in set(report.metrics) - {"loss"}:
            assert report.metrics[name] == pytest.approx(epoch_index(report) + rank_mean), name


# --- one grid experiment, one trial per behaviour ---------------------------------------------


@pytest.fixture(scope="module")
def behaviours(tmp_path_factory):
    return run_experiment(
        tmp_path_factory.mktemp("behaviours"),
        {"name": "grid", "max_length": {"epochs": 3}, "max_concurrent_trials": 2},
        {"behaviour": {"type": "categorical", "vals": ["normal", "early_stop", "die_once", "invalid"]}, "lr": 0.1},
        checkpoint_policy="all")


def test_validation_and_training_metrics_arrive_in_storage_with_batches_and_epochs(behaviours):
    assert behaviours.state == "COMPLETED"
    trial = behaviours.trial(behaviour="normal")
    assert (trial.state, trial.length_done) == ("COMPLETED", 3)
    validations = behaviours.metrics(trial, "validation")
    assert [(m.batches, m.epochs) for m in validations] == [(4, 1), (8, 2), (12, 3)]  # no sanity-check report
    probed = [e["val_loss"] for e in behaviours.log("validation", trial_id=trial.id)]
    assert [m.metrics["val_loss"] for m in validations] == pytest.approx(probed)
    trainings = behaviours.metrics(trial, "training")
    assert [(m.batches, m.epochs) for m in trainings] == [(4, 1), (8, 2), (12, 3)]
    assert all(set(m.metrics) == TRAINING_NAMES for m in trainings)  # each epoch's own, at its end
    assert_reports_hold_their_own_metrics(behaviours, trial, processes=1)


def test_the_first_two_epochs_metrics_are_stored_against_their_epochs(behaviours):
    trial = behaviours.trial(behaviour="normal")
    first, second = behaviours.metrics(trial, "training")[:2]
    assert (first.epochs, first.metrics["train_marker"]) == (1, 0.0)  # the marker is the epoch it was logged in
    assert (second.epochs, second.metrics["train_marker"]) == (2, 1.0)
    first, second = behaviours.metrics(trial, "validation")[:2]
    assert (first.epochs, first.metrics["val_marker"], second.epochs, second.metrics["val_marker"]) == (1, 0.0, 2, 1.0)
    assert "loss" not in first.metrics and "train_marker" not in second.metrics  # no training metric of any epoch


def test_the_search_method_sets_the_length_not_the_trainers_max_epochs(behaviours):
    trial = behaviours.trial(behaviour="normal")
    (end,) = behaviours.log("train_end", trial_id=trial.id)
    assert (end["epoch"], end["global_step"], end["should_stop"]) == (3, 12, True)  # Trainer(max_epochs=20)
    assert behaviours.log("fit_returned", trial_id=trial.id), "fit returns normally when hpt stops the Trainer"


def test_a_trial_is_seeded_from_its_trial_seed(behaviours):
    trial = behaviours.trial(behaviour="normal")
    (start,) = behaviours.log("train_start", trial_id=trial.id)
    assert start["seed"] == trial.seed


def test_early_stopping_ends_the_trial_completed_with_a_checkpoint(behaviours):
    trial = behaviours.trial(behaviour="early_stop")
    assert (trial.state, trial.end_reason) == ("COMPLETED", "early-stop request")
    checkpoint = behaviours.storage.latest_checkpoint(trial.id)
    assert (checkpoint.epochs, checkpoint.batches) == (2, 8)
    assert checkpoint_state(checkpoint)["global_step"] == 8
    assert {"name": "on_trial_exited_early", "args": [trial.request_id, "USER_REQUESTED_STOP"]} in \
        behaviours.searcher_events()


def test_a_trial_killed_mid_epoch_restarts_from_its_last_checkpoint(behaviours):
    trial = behaviours.trial(behaviour="die_once")
    assert (trial.state, trial.restarts, trial.length_done) == ("COMPLETED", 1, 3)
    (died,) = behaviours.log("dying", trial_id=trial.id)
    assert (died["attempt"], died["epoch"], died["global_step"]) == (1, 1, 6)
    first, second = behaviours.log("train_start", trial_id=trial.id)
    assert (first["restore"], second["attempt"]) == (None, 2)
    assert second["restore"]["epochs"] == 1 and second["restore"]["warm_start"] is False
    assert (second["epoch"], second["batches"], second["global_step"]) == (1, 4, 4)  # continues after epoch 1
    assert [m.epochs for m in behaviours.metrics(trial, "training")] == [1, 2, 3]


def test_invalid_hp_raised_in_the_module_ends_the_trial_as_invalid(behaviours):
    trial = behaviours.trial(behaviour="invalid")
    assert (trial.state, trial.end_reason, trial.restarts) == ("CANCELED", "invalid hyperparameters", 0)


def test_a_nan_training_loss_ends_the_trial_with_an_error_naming_it(tmp_path):
    run = run_experiment(tmp_path, {"name": "single", "max_length": {"epochs": 2}}, {"behaviour": "nan_loss"},
                         max_restarts=0)
    (trial,) = run.trials()
    assert trial.state == "ERROR" and run.metrics(trial, "training") == []
    assert "ValueError: metric 'loss' is nan" in run.trial_output(trial.id)


def test_a_cancelled_trial_checkpoints_and_fit_returns_normally(tmp_path):
    experiments = experiments_in(tmp_path)
    storage = experiments.storage()
    deadline = time.monotonic() + 120
    cancelled = []

    def cancel_after_the_first_validation(controller):
        if cancelled:
            return
        if storage.metrics(kind="validation"):
            controller.cancel()  # SIGTERM to the trial, as Ctrl-C on `hpt experiment create` does
            cancelled.append(True)
        assert time.monotonic() < deadline, "the trial never validated"

    experiment = experiments.run({"name": "single", "max_length": {"epochs": 100}}, {"behaviour": "slow", "lr": 0.1},
                                 on_tick=cancel_after_the_first_validation)
    assert experiment.state == "CANCELED"
    (trial,) = experiment.trials()
    assert (trial.state, trial.restarts) == ("CANCELED", 0)
    (end,) = experiment.log("train_end", trial_id=trial.id)
    checkpoint = experiment.storage.latest_checkpoint(trial.id)
    assert checkpoint.batches == end["global_step"] >= BATCHES_PER_EPOCH
    assert experiment.log("fit_returned", trial_id=trial.id), "Lightning's SIGTERM exception did not escape fit"


def test_lightning_trials_of_either_namespace_start_warm_from_a_preloaded_interpreter(tmp_path):
    """The pool starts with the experiment; one trial at a time, each is handed an interpreter that has preloaded
    torch and Lightning (the first waits for it rather than start cold beside it), and trains."""
    experiment = experiments_in(tmp_path).run(
        {"name": "grid", "max_length": {"epochs": 1}, "max_concurrent_trials": 1},
        {"package": {"type": "categorical", "vals": ["lightning", "pytorch_lightning"]}, "lr": 0.1},
        on_tick=hold_until_preloaded)
    assert experiment.state == "COMPLETED"
    first, second = experiment.trials()
    starts = [recorded_start(experiment.storage.get_experiment(experiment.experiment_id).experiment_dir, trial.id)
              for trial in (first, second)]
    assert [start["start"] for start in starts] == ["warm", "warm"]
    for trial, start in zip((first, second), starts):
        assert "torch" in start["start_note"].split("preloaded ")[1].split(", ")
        assert f"hpt: {start['start_note']}" in experiment.trial_output(trial.id)
    for trial in (first, second):
        assert trial.state == "COMPLETED" and [m.epochs for m in experiment.metrics(trial, "validation")] == [1]


def test_a_trainer_that_cannot_validate_at_every_epoch_is_a_clear_error(tmp_path):
    experiment = run_experiment(tmp_path, {"name": "single", "max_length": {"epochs": 2}},
                                {"check_val_every_n_epoch": 2}, max_restarts=0)
    (trial,) = experiment.trials()
    assert (trial.state, trial.end_reason) == ("ERROR", "error after restarts")
    output = experiment.trial_output(trial.id)
    assert "`Trainer(check_val_every_n_epoch=...)` must be 1 or None, but got 2" in output


# --- DDP, two processes on the gloo backend: one voice, every rank in step --------------------------
#
# Each rank trains 4 batches of its half of the data per epoch; the module logs with `sync_dist=True` and
# torchmetrics objects, so reading its metrics is a collective that every rank must join.


def assert_every_rank_stopped(experiment, trial):
    """In each attempt both ranks ended training at the same step, stopped by hpt, and `fit` returned."""
    for attempt in {e["attempt"] for e in experiment.log("train_start", trial_id=trial.id)}:
        ends = [e for e in experiment.log("train_end", trial_id=trial.id) if e["attempt"] == attempt]
        assert sorted(e["rank"] for e in ends) == [0, 1]
        assert all(e["should_stop"] for e in ends) and len({e["global_step"] for e in ends}) == 1
        assert [e for e in experiment.log("fit_returned", trial_id=trial.id) if e["attempt"] == attempt]


@pytest.mark.parametrize("strategy, package", [("ddp", "lightning"), ("ddp_spawn", "pytorch_lightning")])
def test_ddp_reports_synced_metrics_once_and_stops_every_rank(tmp_path, strategy, package):
    experiment = run_experiment(tmp_path, {"name": "single", "max_length": {"epochs": 2}},
                                {"strategy": strategy, "package": package, "devices": 2, "lr": 0.1},
                                checkpoint_policy="all", checkpoint_storage={"save_trial_latest": 2})
    assert (experiment.state, experiment.timed_out) == ("COMPLETED", False)
    (trial,) = experiment.trials()
    assert (trial.state, trial.restarts, trial.length_done) == ("COMPLETED", 0, 2)
    assert [(m.batches, m.epochs) for m in experiment.metrics(trial, "validation")] == [(4, 1), (8, 2)]
    assert [(m.batches, m.epochs) for m in experiment.metrics(trial, "training")] == [(4, 1), (8, 2)]
    assert_reports_hold_their_own_metrics(experiment, trial, processes=2)
    checkpoints = experiment.storage.checkpoints(trial_id=trial.id)
    assert [(c.batches, c.epochs) for c in checkpoints] == [(4, 1), (8, 2)]  # saved at each epoch's end
    assert all((Path(c.path) / CHECKPOINT_FILE).is_file() for c in checkpoints)
    assert_every_rank_stopped(experiment, trial)
    assert {e["epoch"] for e in experiment.log("train_end", trial_id=trial.id)} == {2}  # Trainer(max_epochs=20)
    assert not math.isnan(experiment.metrics(trial, "validation")[-1].metrics["val_loss"])


def test_ddp_asha_pauses_a_trial_and_resumes_it_with_its_epochs_continuing(tmp_path):
    # One at a time, 2 trials, rungs at 1 and 2 epochs. With seed 1 trial 1 draws lr 0.1 and trial 2
    # lr 1e-5: trial 1 reaches rung 0 alone and pauses, trial 2 does worse, so trial 1 is promoted and
    # resumed from its checkpoint.
    experiment = run_experiment(tmp_path, {
        "name": "adaptive_asha", "max_length": {"epochs": 2}, "max_trials": 2, "max_concurrent_trials": 1,
        "mode": "aggressive", "divisor": 2,
    }, {"lr": {"type": "categorical", "vals": [0.1, 0.00001]}, "package": "pytorch_lightning", "strategy": "ddp",
        "devices": 2})
    assert (experiment.state, experiment.timed_out) == ("COMPLETED", False)
    promoted, closed = experiment.trials()
    assert (promoted.hparams["lr"], promoted.state, promoted.length_done, promoted.restarts) == (0.1, "COMPLETED", 2, 0)
    assert (closed.state, closed.end_reason, closed.length_done) == ("COMPLETED", "closed at a rung", 1)
    first, resumed = experiment.log("train_start", trial_id=promoted.id, rank=0)
    assert first["restore"] is None
    assert resumed["restore"]["warm_start"] is False and resumed["restore"]["epochs"] == 1
    assert (resumed["epoch"], resumed["batches"]) == (1, 4)
    assert [(m.epochs, m.batches) for m in experiment.metrics(promoted, "validation")] == [(1, 4), (2, 8)]
    assert [m.epochs for m in experiment.metrics(promoted, "training")] == [1, 2]
    for trial in (promoted, closed):
        assert_reports_hold_their_own_metrics(experiment, trial, processes=2)
        assert_every_rank_stopped(experiment, trial)


def test_ddp_pbt_child_starts_from_its_parents_weights_and_trains_with_its_own_learning_rate(tmp_path):
    # Rounds of 6 batches (an epoch is 4): each round ends mid-epoch, where hpt validates and checkpoints.
    experiment = run_experiment(tmp_path, {
        "name": "pbt", "population_size": 2, "num_rounds": 2, "length_per_round": {"batches": 6},
        "replace_function": {"truncate_fraction": 0.5},
        "explore_function": {"resample_probability": 0.0, "perturb_factor": 0.5},
    }, {"lr": {"type": "log", "minval": -2, "maxval": -1}, "strategy": "ddp", "devices": 2},
        checkpoint_storage={"save_trial_latest": 100})  # keep the parent's checkpoint to compare with
    assert (experiment.state, experiment.timed_out) == ("COMPLETED", False)
    trials = experiment.trials()
    (child,) = [t for t in trials if t.parent_request_id is not None]
    parent = next(t for t in trials if t.request_id == child.parent_request_id)
    assert child.hparams["lr"] in (pytest.approx(parent.hparams["lr"] * 0.5),
                                   pytest.approx(min(parent.hparams["lr"] * 1.5, 0.1)))
    for trial in trials:  # a validation at each target, mid-epoch, besides those at the epochs' ends
        validated = {(m.batches, m.epochs) for m in experiment.metrics(trial, "validation")}
        assert (6, 1) in validated and ((12, 3) in validated) == (trial.length_done == 12)
        assert_reports_hold_their_own_metrics(experiment, trial, processes=2)
        assert_every_rank_stopped(experiment, trial)

    (start,) = experiment.log("train_start", trial_id=child.id, rank=0)
    assert start["restore"]["warm_start"] is True
    parent_checkpoint = experiment.storage.get_checkpoint(start["restore"]["checkpoint_id"])
    assert (parent_checkpoint.trial_id, parent_checkpoint.batches) == (parent.id, 6)
    parent_state = checkpoint_state(parent_checkpoint)
    assert start["weights"] == pytest.approx([float(t.double().sum()) for t in parent_state["state_dict"].values()])
    assert parent_state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(parent.hparams["lr"])
    assert start["lr"] == pytest.approx(child.hparams["lr"])  # not the parent's, held in its optimizer state
    assert all(e["lr"] == pytest.approx(child.hparams["lr"]) for e in experiment.log("epoch_end", trial_id=child.id))
    assert (start["epoch"], start["batches"]) == (0, 0)
    assert [(m.batches, m.epochs) for m in experiment.metrics(child, "validation")] == [(4, 1), (6, 1)]
