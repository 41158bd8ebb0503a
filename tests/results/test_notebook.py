"""`hpt_core.notebook.run`: an experiment started from Python with a function as the trial, run in its own process."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from hpt_core import ConfigError
from hpt_core.notebook import FUNCTION_REFERENCE, importable_name, run
from hpt_core.runner import delete_experiment
from hpt_core.storage import Storage

CONFIG = {
    "searcher": {"name": "grid", "metric": "loss", "max_length": {"batches": 3}},
    "hyperparameters": {"lr": {"type": "categorical", "vals": [0.1, 0.2]}},
}

# What a notebook does: define the trial function in __main__ (using one of its globals) and run it.
NOTEBOOK = """
import json, os, sys
import hpt_core.notebook

OFFSET = 0.5  # a global of the notebook, sent along with the function

def train(ctx):
    import helpers  # a module of the model directory
    scale = float(open("data.txt").read())  # a file of the model directory, relative to the trial's folder
    weight = 0.0
    for target in ctx.targets():
        weight += helpers.step(ctx.get_hparam("lr"), scale)
        ctx.report_validation({"loss": OFFSET / (1 + weight), "pid": os.getpid()}, batches=target)
        with ctx.save_checkpoint(batches=target) as path:
            (path / "weight.json").write_text(json.dumps(weight))

experiment = hpt_core.notebook.run(json.loads(sys.argv[1]), train, model_dir=sys.argv[2], storage=sys.argv[3],
                                   quiet=True)
print(json.dumps({"id": experiment.id, "pid": os.getpid(), "state": experiment.state,
                  "best": experiment.best_trial().hparams, "checkpoint": str(experiment.best_checkpoint().path)}))
"""


def test_a_function_defined_in_a_notebook_runs_as_the_trial_in_its_own_process(tmp_path):
    pytest.importorskip("cloudpickle")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "helpers.py").write_text("def step(lr, scale):\n    return lr * scale\n")
    (model_dir / "data.txt").write_text("10")
    storage_url = f"sqlite:///{tmp_path}/hpt.db"
    env = {**os.environ, "HPT_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", NOTEBOOK, json.dumps(CONFIG), str(model_dir), storage_url],
                            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["state"] == "COMPLETED" and outcome["best"] == {"lr": 0.2}
    assert json.loads((tmp_path / outcome["checkpoint"] / "weight.json").read_text()) == pytest.approx(0.2 * 10)

    from hpt_core.results import Experiment

    with Experiment.load(outcome["id"], storage=storage_url) as experiment:
        reports = experiment.metrics("validation")
        assert [(row["batches"], row["metrics"]["loss"]) for row in reports if row["request_id"] == 2] == [
            (3, pytest.approx(0.5 / (1 + 0.2 * 10)))]
        pids = {row["metrics"]["pid"] for row in reports}
        assert len(pids) == 2 and outcome["pid"] not in pids  # one process per trial, none the notebook's


def test_without_cloudpickle_a_function_importable_by_name_is_used(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # as if cloudpickle were not installed
    monkeypatch.setenv("HPT_HOME", str(tmp_path / "home"))
    (tmp_path / "my_trainers.py").write_text(textwrap.dedent("""
        def train(ctx):
            for target in ctx.targets():
                ctx.report_validation({"loss": 1 / (1 + ctx.get_hparam("lr") * target)}, batches=target)
    """))
    monkeypatch.chdir(tmp_path)  # the notebook's folder: trials find its modules on their import path
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_trainers

    experiment = run(CONFIG, my_trainers.train, storage=f"sqlite:///{tmp_path}/hpt.db", quiet=True)
    assert experiment.state == "COMPLETED"
    assert [trial.state for trial in experiment.trials()] == ["COMPLETED", "COMPLETED"]
    assert experiment.best_trial().best_validation.value == pytest.approx(1 / 1.6)
    (reference,) = (tmp_path / "home" / "notebook").glob(f"*/{FUNCTION_REFERENCE}")
    assert json.loads(reference.read_text()) == {"module": "my_trainers", "qualname": "train"}

    with Storage(f"sqlite:///{tmp_path}/hpt.db") as storage:
        removed = delete_experiment(storage, experiment.id)
    assert str(reference.parent) in removed and not reference.parent.exists()  # nothing of it is left behind


def test_without_cloudpickle_a_function_defined_in_place_is_refused_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)
    monkeypatch.setenv("HPT_HOME", str(tmp_path / "home"))

    def train(ctx):
        pass

    with pytest.raises(ValueError, match=r"must be importable by module and name.*install cloudpickle"):
        run(CONFIG, train, storage=f"sqlite:///{tmp_path}/hpt.db")
    assert not (tmp_path / "home").exists()  # refused before anything was written


def test_importable_names():
    assert importable_name(json.dumps) == ("json", "dumps")
    with pytest.raises(ValueError, match="defined in test_notebook as .*<locals>"):
        importable_name(lambda ctx: None)


def test_the_config_leaves_the_entrypoint_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("HPT_HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError) as caught:
        run({**CONFIG, "entrypoint": "python train.py"}, json.dumps, storage=f"sqlite:///{tmp_path}/hpt.db")
    assert caught.value.paths == ["entrypoint"]
    with pytest.raises(TypeError, match="trial_function must be a function"):
        run(CONFIG, "train", storage=f"sqlite:///{tmp_path}/hpt.db")
