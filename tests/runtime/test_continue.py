"""`hpt experiment continue ID --max-trials N` extends a finished search by exactly N trials."""

import pytest
from real_experiments import RUNTIME_MODEL, ExperimentFolder

from hpt_core import create_searcher

SPACE = {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}


def create(experiments, searcher):
    path = experiments.write_file("exp", {"max_concurrent_trials": 2, **searcher}, SPACE)
    result = experiments.hpt("experiment", "create", str(path), str(RUNTIME_MODEL), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    return experiments.storage()


@pytest.mark.parametrize("searcher, before", [
    ({"name": "random", "max_length": 2, "max_trials": 2}, 2),
    ({"name": "adaptive_asha", "max_length": 4, "max_trials": 4, "mode": "standard", "divisor": 2}, 4),
])
def test_continue_adds_exactly_n_trials_and_keeps_the_search_state(tmp_path, searcher, before):
    experiments = ExperimentFolder(tmp_path)
    storage = create(experiments, searcher)
    first = storage.list_trials(1)
    assert len(first) == before
    result = experiments.hpt("experiment", "continue", "1", "--max-trials", "3", "--quiet")
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
    experiments = ExperimentFolder(tmp_path)
    storage = create(experiments, {"name": "single", "max_length": 1})
    result = experiments.hpt("experiment", "continue", "1", "--max-trials", "2", "--quiet")
    assert result.returncode == 2 and "cannot be continued" in result.stderr
    assert storage.get_experiment(1).state == "COMPLETED"
