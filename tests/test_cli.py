"""The `hpt` command's skeleton: help, version, config check, preview."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

import hpt_core
from hpt_core.storage import Storage
from real_experiments import ExperimentFolder

EXAMPLES = Path(__file__).parents[1] / "examples"


def hpt(*args):
    return subprocess.run([sys.executable, "-m", "hpt_core.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_and_version():
    result = hpt("--help")
    assert result.returncode == 0 and "config" in result.stdout and "preview" in result.stdout
    result = hpt("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"hpt {hpt_core.__version__}"


def test_config_check_prints_the_normalised_config():
    result = hpt("config", "check", str(EXAMPLES / "digits_sgd" / "adaptive_asha.yaml"))
    assert result.returncode == 0, result.stderr
    normalised = yaml.safe_load(result.stdout)
    assert normalised["max_restarts"] == 2 and normalised["checkpoint_policy"] == "best"
    assert normalised["searcher"]["max_length"] == {"epochs": 16}
    assert normalised["searcher"]["max_rungs"] == 5
    assert normalised["hyperparameters"]["batch_size"] == {"type": "const", "val": 64}
    assert normalised["hyperparameters"]["optimizer"]["alpha"]["base"] == 10.0


def test_config_check_lists_every_error_and_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("searcher: {name: random, metric: loss, max_trials: 0}\nmax_restart: 2\n")
    result = hpt("config", "check", str(path))
    assert result.returncode == 2
    assert "searcher.max_trials" in result.stderr and "searcher.max_length" in result.stderr
    assert "did you mean 'max_restarts'" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_of_a_missing_file():
    result = hpt("config", "check", "no-such-file.yaml")
    assert result.returncode == 2 and "no such file: no-such-file.yaml" in result.stderr


def test_preview_of_the_asha_example():
    # aggressive, divisor 4, max_length 16 epochs, 16 trials: R = min(5, log4(16) + 1, log4(16) + 1) = 3 rungs at
    # 16 / 4^2 = 1, 16 / 4 = 4 and 16 epochs. Rung 0 promotes floor(16 / 4) = 4, rung 1 floor(4 / 4) = 1:
    # 12 trials stop at 1 epoch, 3 at 4, 1 trains to 16.
    result = hpt("preview", str(EXAMPLES / "digits_sgd" / "adaptive_asha.yaml"))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["12", "|", "1", "epoch"] in rows and ["3", "|", "4", "epochs"] in rows and ["1", "|", "16", "epochs"] in rows


def test_experiment_create_runs_the_example_end_to_end(tmp_path):
    env_home = {"HPT_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "hpt_core.cli", "experiment", "create",
                             str(EXAMPLES / "digits_sgd" / "random.yaml")], capture_output=True, text=True,
                            timeout=600, env={**os.environ, **env_home})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    with Storage(f"sqlite:///{tmp_path}/home/hpt.db") as storage:
        experiment_dir = storage.get_experiment(1).experiment_dir
    assert experiment_dir.startswith(f"{tmp_path}/home/experiments/")
    assert lines[0] == f"experiment 1 created; its results go to {experiment_dir} " \
                       f"(storage sqlite:///{tmp_path}/home/hpt.db)"
    assert "experiment 1 COMPLETED" in result.stdout and "best trial " in result.stdout
    suggested = lines[-1].removeprefix("every trial: ").split()  # `hpt ...`, or the path of this venv's hpt
    assert suggested[1:] == ["experiment", "describe", "1"] and shutil.which(suggested[0]) is not None
    described = subprocess.run([*suggested, "--json"], capture_output=True, text=True, timeout=120,
                               env={**os.environ, **env_home})
    description = json.loads(described.stdout)
    assert description["state"] == "COMPLETED" and len(description["trials"]) == 6
    assert all(trial["state"] == "COMPLETED" and trial["length_trained"] == 8 for trial in description["trials"])
    assert description["best_trial"] in [trial["id"] for trial in description["trials"]]


def test_describe_prints_any_metric_name_as_it_is_and_an_oversized_id_is_a_clear_error(tmp_path, monkeypatch,
                                                                                          capsys):
    from hpt_core.cli import main

    url = f"sqlite:///{tmp_path}/hpt.db"
    names = ["acc[b]", "val.loss", 'a"b', "$cost", "学习率"]
    with Storage(url) as storage:
        experiment_id = storage.create_experiment(name="names", config={"searcher": {"name": "random",
                                                                                      "metric": "acc[b]"}},
                                                  model_dir=".", seed=0, secret="s")
        trial_id = storage.create_trial(experiment_id, request_id=1, hparams={}, seed=1)
        storage.add_metrics(trial_id, "validation", {name: 0.5 for name in names}, batches=10, epochs=1)
    monkeypatch.setenv("HPT_STORAGE", url)
    monkeypatch.setenv("COLUMNS", "200")
    for command in (["experiment", "describe", str(experiment_id)], ["trial", "describe", str(trial_id)]):
        result = subprocess.run([sys.executable, "-m", "hpt_core.cli", *command], capture_output=True, text=True,
                                env={**os.environ})
        assert result.returncode == 0, result.stderr
        shown = names if command[0] == "trial" else ["acc[b]"]
        assert all(name in result.stdout for name in shown), (command, result.stdout)
    for command in (["experiment", "describe"], ["trial", "describe"], ["experiment", "pause"],
                    ["experiment", "delete", "--yes"], ["trial", "logs"], ["trial", "download", "--best"]):
        assert main([*command, str(2**70)]) == 2, command
        assert "does not exist" in capsys.readouterr().err


def test_the_best_line_names_the_trial_by_id_and_number_and_counts_one_epoch_in_the_singular(tmp_path):
    experiments = ExperimentFolder(tmp_path)
    experiments.run({"name": "single", "max_length": 1}, {"quality": 1.0})  # experiment 1, trial 1
    path = experiments.write_file("one_epoch", {"name": "single", "max_length": {"epochs": 1}}, {"quality": 1.0})
    result = experiments.hpt("experiment", "create", str(path), str(experiments.model_dir), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "best trial 2 (#1 in experiment 2): val_loss 0.5 at 1 epoch (quality=1.0)" in result.stdout
