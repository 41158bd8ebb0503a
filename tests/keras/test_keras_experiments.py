"""HptCallback in real experiments: real trial processes train a small Keras model on digits.

Every trial process imports TensorFlow (or PyTorch), so the experiments are kept small.
"""

import importlib.util
from pathlib import Path

import pytest
from real_experiments import ExperimentFolder, hold_until_preloaded

from hpt_core.executors.local import recorded_start

pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None,
                                reason="the Keras tests need the keras extra")

MODEL_DIR = Path(__file__).parent / "model"
STEPS_PER_EPOCH = 8  # 512 training rows in batches of 64
BACKENDS = ["tensorflow", pytest.param("torch", marks=pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed (the lightning extra brings it)"))]


@pytest.fixture
def experiments(tmp_path):
    """Experiments of model/keras_trial.py in `tmp_path`: 1 restart, seed 1, Keras on TensorFlow, quiet, with its
    home in `tmp_path`."""
    return ExperimentFolder(tmp_path, MODEL_DIR, "keras_trial.py", variables={
        "KERAS_HOME": str(tmp_path / "keras-home"), "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3",
        "TF_ENABLE_ONEDNN_OPTS": "0"}, defaults={"max_restarts": 1, "reproducibility": {"experiment_seed": 1}})


# --- metrics and lengths ------------------------------------------------------------------------


def test_a_trial_reports_every_epoch_and_a_length_in_batches_ends_fit_at_that_batch(experiments):
    run = experiments.run(
        {"name": "single", "max_length": {"batches": 12}}, {"learning_rate": 0.01})
    assert run.state == "COMPLETED"
    (trial,) = run.trials()
    assert (trial.state, trial.end_reason, trial.length_done) == ("COMPLETED", "completed its length", 12)
    training, validation = run.metrics(trial, "training"), run.metrics(trial, "validation")
    # epoch 2 ends at batch 12, the target, and Keras validates there
    assert [(m.batches, m.epochs) for m in training] == [(8, 1), (12, 2)]
    assert [(m.batches, m.epochs) for m in validation] == [(8, 1), (12, 2)]
    assert all(set(m.metrics) == {"loss", "accuracy"} for m in training)
    assert all(set(m.metrics) == {"val_loss", "val_accuracy"} for m in validation)
    assert run.log("epoch_end", trial_id=trial.id)[-1]["iterations"] == 12
    (begin,) = run.log("train_begin", trial_id=trial.id)
    assert begin["fit_epochs"] == 12  # the progress bar counts to the length in steps, one epoch each at most
    assert run.storage.latest_checkpoint(trial.id).batches == 12
    assert len(run.log("exit", trial_id=trial.id)) == 1  # fit returned and the script ran to its end


# --- pausing and resuming -----------------------------------------------------------------------


def test_adaptive_asha_pauses_a_trial_and_resumes_it_with_its_optimizer_state(experiments):
    # aggressive, divisor 2, 2 epochs, 2 trials one at a time: rungs at 1 and 2 epochs. The first trial
    # reports at rung 0 alone and pauses; when the second reports, the better of the two is promoted.
    # The seed draws a better learning rate for the first trial, so it is resumed from its checkpoint.
    run = experiments.run(
        {"name": "adaptive_asha", "max_length": {"epochs": 2}, "max_trials": 2, "max_concurrent_trials": 1,
         "mode": "aggressive", "divisor": 2},
        {"learning_rate": {"type": "log", "minval": -3, "maxval": -1}}, seed=10)
    assert run.state == "COMPLETED"
    first, second = run.trials()
    assert first.hparams["learning_rate"] > 10 * second.hparams["learning_rate"], "the seed's draw"
    assert (first.state, first.length_done, first.restarts) == ("COMPLETED", 2, 0)  # a pause is not a restart
    assert second.length_done == 1
    paused, resumed = run.log("train_begin", trial_id=first.id)
    assert (paused["attempt"], resumed["attempt"]) == (1, 2)
    assert resumed["restore"]["warm_start"] is False and resumed["restore"]["epochs"] == 1
    assert resumed["initial_epoch"] == 1
    assert paused["fit_epochs"] == resumed["fit_epochs"] == 2  # the progress bar counts to max_length
    last_before_pause = [e for e in run.log("epoch_end", trial_id=first.id) if e["attempt"] == 1][-1]
    assert resumed["iterations"] == last_before_pause["iterations"] == STEPS_PER_EPOCH
    assert resumed["weights_sum"] == pytest.approx(last_before_pause["weights_sum"], rel=1e-6)
    assert [e["epoch"] for e in run.log("epoch_begin", trial_id=first.id)] == [0, 1]
    assert [m.epochs for m in run.metrics(first, "validation")] == [1, 2]
    assert run.log("epoch_end", trial_id=first.id)[-1]["iterations"] == 2 * STEPS_PER_EPOCH


# --- stopping, failures, invalid hyperparameters ------------------------------------------------


def test_early_stopping_ends_the_trial_completed_with_a_checkpoint(experiments):
    run = experiments.run(
        {"name": "single", "max_length": {"epochs": 5}}, {"behaviour": "early_stop"})
    assert run.state == "COMPLETED"
    (trial,) = run.trials()
    assert (trial.state, trial.end_reason) == ("COMPLETED", "early-stop request")
    assert run.storage.latest_checkpoint(trial.id).epochs == 2
    assert [m.epochs for m in run.metrics(trial, "training")] == [1, 2]
    events = run.searcher_events()
    assert {"name": "on_trial_exited_early", "args": [trial.request_id, "USER_REQUESTED_STOP"]} in events


def test_a_nan_training_loss_ends_the_trial_with_an_error_naming_it(experiments):
    run = experiments.run({"name": "single", "max_length": {"epochs": 2}}, {"behaviour": "nan_loss"},
                          max_restarts=0)
    (trial,) = run.trials()
    assert trial.state == "ERROR" and run.metrics(trial, "training") == []
    assert "ValueError: metric 'loss' is nan" in run.trial_output(trial.id)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_trial_restarts_from_its_last_checkpoint(experiments, backend):
    run = experiments.run(
        {"name": "single", "max_length": {"epochs": 3}}, {"behaviour": "die_once"}, checkpoint_policy="all",
        variables={"KERAS_BACKEND": backend})
    assert run.state == "COMPLETED"
    (trial,) = run.trials()
    assert (trial.state, trial.restarts, trial.length_done) == ("COMPLETED", 1, 3)
    first, second = run.log("train_begin", trial_id=trial.id)
    assert {first["backend"], second["backend"]} == {backend}
    assert second["restore"] == {"checkpoint_id": second["restore"]["checkpoint_id"], "epochs": 2,
                                 "batches": 2 * STEPS_PER_EPOCH, "warm_start": False}
    killed_at = [e for e in run.log("epoch_end", trial_id=trial.id) if e["attempt"] == 1][-1]
    assert second["iterations"] == killed_at["iterations"] == 2 * STEPS_PER_EPOCH
    assert second["weights_sum"] == pytest.approx(killed_at["weights_sum"], rel=1e-6)
    assert [m.epochs for m in run.metrics(trial, "training")] == [1, 2, 3]


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_trials_start_warm_from_a_preloaded_interpreter(experiments, backend):
    """The pool starts with the experiment; one trial at a time, each is handed an interpreter that has preloaded
    Keras on the backend (the first waits for it rather than start cold beside it), and trains."""
    run = experiments.run(
        {"name": "grid", "max_length": {"epochs": 1}, "max_concurrent_trials": 1},
        {"learning_rate": {"type": "categorical", "vals": [0.01, 0.02]}},
        variables={"KERAS_BACKEND": backend}, on_tick=hold_until_preloaded)
    assert run.state == "COMPLETED"
    first, second = run.trials()
    experiment_dir = run.storage.get_experiment(run.experiment_id).experiment_dir
    starts = [recorded_start(experiment_dir, trial.id) for trial in (first, second)]
    assert [start["start"] for start in starts] == ["warm", "warm"]
    assert all("keras" in start["start_note"].split("preloaded ")[1].split(", ") for start in starts)
    assert [entry["backend"] for entry in run.log("train_begin")] == [backend, backend]
    for trial in (first, second):
        assert trial.state == "COMPLETED" and [m.epochs for m in run.metrics(trial, "validation")] == [1]


def test_invalid_hyperparameters_raised_inside_fit_end_the_trial_invalid(experiments):
    run = experiments.run(
        {"name": "single", "max_length": {"epochs": 2}}, {"behaviour": "invalid_train"})
    (trial,) = run.trials()
    assert (trial.state, trial.end_reason, trial.restarts) == ("CANCELED", "invalid hyperparameters", 0)
    assert run.log("train_begin", trial_id=trial.id) and not run.log("epoch_end", trial_id=trial.id)


# --- population-based training ------------------------------------------------------------------


def test_a_pbt_child_starts_from_its_parents_weights_with_its_own_learning_rate(experiments):
    # population 2, truncate 0.5: after round 1 the worse member is closed and the better one cloned.
    run = experiments.run(
        {"name": "pbt", "population_size": 2, "num_rounds": 2, "length_per_round": {"epochs": 1},
         "max_concurrent_trials": 2, "replace_function": {"truncate_fraction": 0.5},
         "explore_function": {"resample_probability": 0.0, "perturb_factor": 0.5}},
        {"learning_rate": {"type": "log", "minval": -4, "maxval": -1}})
    assert run.state == "COMPLETED"
    (child,) = [t for t in run.trials() if t.parent_request_id is not None]
    parent = next(t for t in run.trials() if t.request_id == child.parent_request_id)
    assert child.hparams["learning_rate"] != pytest.approx(parent.hparams["learning_rate"])
    (start,) = run.log("train_begin", trial_id=child.id)
    assert start["restore"]["warm_start"] is True and start["initial_epoch"] == 0
    assert run.storage.get_checkpoint(start["restore"]["checkpoint_id"]).trial_id == parent.id
    parent_after_round_1 = next(e for e in run.log("epoch_end", trial_id=parent.id) if e["epochs"] == 1)
    assert start["weights_sum"] == pytest.approx(parent_after_round_1["weights_sum"], rel=1e-6)
    assert start["learning_rate"] == pytest.approx(child.hparams["learning_rate"], rel=1e-6)
    (child_epoch,) = run.log("epoch_end", trial_id=child.id)
    assert child_epoch["learning_rate"] == pytest.approx(child.hparams["learning_rate"], rel=1e-6)
    assert [(m.batches, m.epochs) for m in run.metrics(child, "validation")] == [(STEPS_PER_EPOCH, 1)]
    assert (child.state, child.length_done) == ("COMPLETED", 1)
