"""A real experiment with adaptive_asha and `sampler: tpe`: it completes, and after kill -9 of its controller
`hpt experiment resume` ends with exactly the operations and trials of an uninterrupted run.

The plain-Python trial of the runtime tests (tests/runtime/model) trains one trial at a time
(max_concurrent_trials: 1), so its metrics depend only on its hyperparameters and lengths, and
the same seed must give the same search, the model's proposals included.
"""

import os
import signal
import subprocess
import sys
import time
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


def results_recorded(home: Path) -> int:
    """Trials with a result in the controller's saved searcher state (0 before there is one)."""
    try:
        state = Storage(f"sqlite:///{home}/hpt.db").get_experiment(1).searcher_state
    except Exception:  # the database or the experiment may not exist yet
        return 0
    return len(state["sampler_history"]["results"]) if state else 0


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


def test_a_resumed_experiment_repeats_the_uninterrupted_one_exactly(tmp_path: Path, uninterrupted) -> None:
    home = tmp_path / "home"
    home.mkdir()
    controller = create_experiment(home)
    deadline = time.monotonic() + 180
    while results_recorded(home) < MODEL_RESULTS:  # then the model proposes the next trial
        assert time.monotonic() < deadline and controller.poll() is None, "the experiment ended before the kill"
        time.sleep(0.05)
    controller.send_signal(signal.SIGKILL)
    controller.wait()
    assert outcome(home)[0] == "ACTIVE"

    resumed = hpt(home, "experiment", "resume", "1")
    output, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, output
    state, operations, trials, _ = outcome(home)
    expected_state, expected_operations, expected_trials, _ = uninterrupted
    assert state == expected_state == "COMPLETED"
    assert operations == expected_operations
    assert trials == expected_trials
