"""A real experiment with adaptive_asha and `sampler: tpe` completes with the model in use.

(That a killed one resumes to exactly the uninterrupted run is tests/runtime/test_resume.py's chaos test.)
"""

import subprocess
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
