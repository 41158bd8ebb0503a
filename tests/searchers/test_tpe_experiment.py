"""A real experiment with adaptive_asha and `sampler: tpe`: it completes, and after kill -9 of its controller
`hpt experiment resume` ends with exactly the operations and trials of an uninterrupted run.

The plain-Python trial of the runtime tests (tests/runtime/model) trains one trial at a time
(max_concurrent_trials: 1), so its metrics depend only on its hyperparameters and lengths, and
the same seed must give the same search, the model's proposals included.
"""

import signal
import subprocess
import time
from pathlib import Path

import pytest
from real_experiments import RUNTIME_MODEL, ExperimentFolder

MODEL_RESULTS = 10
"""Results at one length after which the TPE model proposes (one hyperparameter: max(1 + 1, 10))."""


def create_experiment(experiments: ExperimentFolder) -> subprocess.Popen:
    path = experiments.write_file(
        "exp", {"name": "adaptive_asha", "max_length": {"epochs": 2}, "max_trials": 12, "divisor": 2,
                "mode": "aggressive", "max_concurrent_trials": 1, "sampler": "tpe"},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}, seed=3)
    return hpt(experiments, "experiment", "create", str(path), str(RUNTIME_MODEL))


def hpt(experiments: ExperimentFolder, *args: str) -> subprocess.Popen:
    return experiments.start_hpt(*args, "--quiet", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def tpe_experiments(path: Path) -> ExperimentFolder:
    return ExperimentFolder(path, variables={"EPOCH_SECONDS": "0.02"})


def outcome(experiments: ExperimentFolder) -> tuple[str, list, list, dict]:
    storage = experiments.storage()
    experiment = storage.get_experiment(1)
    operations = [record.payload for record in storage.searcher_records(1) if record.kind == "operation"]
    trials = [(t.request_id, t.hparams, t.state, t.end_reason, t.length_done) for t in storage.list_trials(1)]
    return experiment.state, operations, trials, experiment.searcher_state


def results_recorded(experiments: ExperimentFolder) -> int:
    """Trials with a result in the controller's saved searcher state (0 before there is one)."""
    try:
        state = experiments.storage().get_experiment(1).searcher_state
    except Exception:  # the database or the experiment may not exist yet
        return 0
    return len(state["sampler_history"]["results"]) if state else 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list, list, dict]:
    experiments = tpe_experiments(tmp_path_factory.mktemp("uninterrupted"))
    process = create_experiment(experiments)
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output
    return outcome(experiments)


def test_an_experiment_with_the_tpe_sampler_completes_with_the_model_in_use(uninterrupted) -> None:
    state, operations, trials, searcher_state = uninterrupted
    assert state == "COMPLETED"
    assert len(trials) == 12 and all(trial[2] == "COMPLETED" for trial in trials)
    assert all(0.1 <= trial[1]["quality"] <= 2.0 for trial in trials)
    bottom_rung_results = [losses for losses in searcher_state["sampler_history"]["results"].values() if "1" in losses]
    assert len(bottom_rung_results) == 12 > MODEL_RESULTS  # the last trials were proposed by the model


def test_a_resumed_experiment_repeats_the_uninterrupted_one_exactly(tmp_path: Path, uninterrupted) -> None:
    experiments = tpe_experiments(tmp_path)
    controller = create_experiment(experiments)
    deadline = time.monotonic() + 180
    while results_recorded(experiments) < MODEL_RESULTS:  # then the model proposes the next trial
        assert time.monotonic() < deadline and controller.poll() is None, "the experiment ended before the kill"
        time.sleep(0.05)
    controller.send_signal(signal.SIGKILL)
    controller.wait()
    assert outcome(experiments)[0] == "ACTIVE"

    resumed = hpt(experiments, "experiment", "resume", "1")
    output, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, output
    state, operations, trials, _ = outcome(experiments)
    expected_state, expected_operations, expected_trials, _ = uninterrupted
    assert state == expected_state == "COMPLETED"
    assert operations == expected_operations
    assert trials == expected_trials
