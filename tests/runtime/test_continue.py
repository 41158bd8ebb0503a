"""`hpt experiment continue ID --max-trials N` extends a finished search by exactly N trials."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpt_core import create_searcher
from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parent / "model"
SPACE = {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}


def hpt(home, *args):
    env = {**os.environ, "HPT_HOME": str(home), "TRIAL_LOG": str(home / "log.jsonl")}
    return subprocess.run([sys.executable, "-m", "hpt_core.cli", *args, "--quiet"], env=env, capture_output=True,
                          text=True, timeout=300)


def create(home, searcher):
    home.mkdir(exist_ok=True)
    config = home / "exp.yaml"
    config.write_text(yaml.safe_dump({"entrypoint": f"{sys.executable} trial.py", "hyperparameters": SPACE,
                                      "searcher": {"metric": "val_loss", "max_concurrent_trials": 2, **searcher}}))
    result = hpt(home, "experiment", "create", str(config), str(MODEL_DIR))
    assert result.returncode == 0, result.stdout + result.stderr
    return Storage(f"sqlite:///{home}/hpt.db")


@pytest.mark.parametrize("searcher, before", [
    ({"name": "random", "max_length": 2, "max_trials": 2}, 2),
    ({"name": "adaptive_asha", "max_length": 4, "max_trials": 4, "mode": "standard", "divisor": 2}, 4),
])
def test_continue_adds_exactly_n_trials_and_keeps_the_search_state(tmp_path, searcher, before):
    storage = create(tmp_path / "home", searcher)
    first = storage.list_trials(1)
    assert len(first) == before
    result = hpt(tmp_path / "home", "experiment", "continue", "1", "--max-trials", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    trials = storage.list_trials(1)
    assert len(trials) == before + 3 and trials[:before] == first
    assert all(t.state == "COMPLETED" for t in trials) and storage.get_experiment(1).state == "COMPLETED"
    assert len({t.hparams["quality"] for t in trials}) == before + 3  # the generator went on, no repeats
    replayed = create_searcher(storage.get_experiment(1).config, seed=storage.get_experiment(1).seed)
    events = [r.payload for r in storage.searcher_records(1) if r.kind == "event"]
    assert {"name": "extend", "args": [3]} in events
    for event in events:  # the record replays: the extension is part of the search's history
        getattr(replayed, event["name"])(*event["args"])
    assert replayed.progress() == 1.0


def test_a_search_with_a_fixed_set_of_trials_cannot_be_continued(tmp_path):
    create(tmp_path / "home", {"name": "single", "max_length": 1})
    result = hpt(tmp_path / "home", "experiment", "continue", "1", "--max-trials", "2")
    assert result.returncode == 2 and "cannot be continued" in result.stderr
    assert Storage(f"sqlite:///{tmp_path}/home/hpt.db").get_experiment(1).state == "COMPLETED"
