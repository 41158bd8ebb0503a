"""`hpt experiment create --test` passes a good script and says what breaks in a bad one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

MODEL_DIR = Path(__file__).parent / "model"


def smoke_test(tmp_path, behaviour):
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "entrypoint": f"{sys.executable} trial.py",
        "searcher": {"name": "adaptive_asha", "metric": "val_loss", "max_length": {"epochs": 8}, "max_trials": 8},
        "hyperparameters": {"behaviour": behaviour, "quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}}))
    env = {**os.environ, "HPT_HOME": str(tmp_path / "home"), "TRIAL_LOG": str(tmp_path / "log.jsonl")}
    return subprocess.run([sys.executable, "-m", "hpt_core.cli", "experiment", "create", "--test", str(config),
                           str(MODEL_DIR)], env=env, capture_output=True, text=True, timeout=300)


def test_a_good_script_passes_and_leaves_the_users_store_untouched(tmp_path):
    result = smoke_test(tmp_path, "normal")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("[ok  ]") == 3 and "ready to run" in result.stdout
    assert not (tmp_path / "home").exists()


def test_a_script_that_never_reports_the_metric_is_found(tmp_path):
    result = smoke_test(tmp_path, "no_metric")
    assert result.returncode == 1
    assert "[FAIL] the first configuration trains, validates and reports the searcher metric 'val_loss'" in result.stdout
    assert "'val_loss' was not reported; reported metrics: accuracy" in result.stdout


def test_a_checkpoint_that_does_not_restore_is_found(tmp_path):
    result = smoke_test(tmp_path, "bad_restore")
    assert result.returncode == 1
    assert "[ok  ] a checkpoint is saved" in result.stdout
    assert "[FAIL] a trial starts from that checkpoint and trains on" in result.stdout
    assert "RuntimeError: this script cannot load its own checkpoints" in result.stdout


@pytest.mark.parametrize("behaviour", ["invalid", "die"])
def test_an_exception_in_the_first_trial_is_found(tmp_path, behaviour):
    result = smoke_test(tmp_path, behaviour)
    assert result.returncode == 1 and "[FAIL] the first configuration" in result.stdout
