"""A real experiment with adaptive_asha and `sampler: tpe` completes with the model in use.

(That a killed one resumes to exactly the uninterrupted run is tests/runtime/test_resume.py's chaos test.)
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parents[1] / "runtime" / "model"
MODEL_RESULTS = 10
"""Results at one length after which the TPE model proposes (one hyperparameter: max(1 + 1, 10))."""


def create_experiment(home: Path) -> subprocess.Popen:
    config = {"entrypoint": f"{sys.executable} trial.py", "reproducibility": {"experiment_seed": 3},
              "searcher": {"name": "adaptive_asha", "metric": "val_loss", "max_length": {"epochs": 2},
                           "max_trials": 12, "divisor": 2, "mode": "aggressive", "max_concurrent_trials": 1,
                           "sampler": "tpe"},
              "hyperparameters": {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}}
    (home / "exp.yaml").write_text(yaml.safe_dump(config))
    return hpt(home, "experiment", "create", str(home / "exp.yaml"), str(MODEL_DIR))


def hpt(home: Path, *args: str) -> subprocess.Popen:
    environment = {**os.environ, "HPT_HOME": str(home), "TRIAL_LOG": str(home / "trial-log.jsonl"),
                   "EPOCH_SECONDS": "0.02"}
    return subprocess.Popen([sys.executable, "-m", "hpt_core.cli", *args, "--quiet"], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def outcome(home: Path) -> tuple[str, list, list, dict]:
    storage = Storage(f"sqlite:///{home}/hpt.db")
    experiment = storage.get_experiment(1)
    operations = [record.payload for record in storage.searcher_records(1) if record.kind == "operation"]
    trials = [(t.request_id, t.hparams, t.state, t.end_reason, t.length_done) for t in storage.list_trials(1)]
    return experiment.state, operations, trials, experiment.searcher_state


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list, list, dict]:
    home = tmp_path_factory.mktemp("uninterrupted")
    process = create_experiment(home)
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output
    return outcome(home)


def test_an_experiment_with_the_tpe_sampler_completes_with_the_model_in_use(uninterrupted) -> None:
    state, operations, trials, searcher_state = uninterrupted
    assert state == "COMPLETED"
    assert len(trials) == 12 and all(trial[2] == "COMPLETED" for trial in trials)
    assert all(0.1 <= trial[1]["quality"] <= 2.0 for trial in trials)
    bottom_rung_results = [losses for losses in searcher_state["sampler_history"]["results"].values() if "1" in losses]
    assert len(bottom_rung_results) == 12 > MODEL_RESULTS  # the last trials were proposed by the model
