"""examples/keras_digits: its experiment files are valid, and its script runs unchanged outside an experiment."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hpt_core

EXAMPLE = Path(__file__).parents[2] / "examples" / "keras_digits"


@pytest.mark.parametrize("name", ["adaptive_asha.yaml", "pbt.yaml"])
def test_the_example_experiment_files_are_valid(name):
    config = hpt_core.load_config(EXAMPLE / name)
    assert config.entrypoint == "python train.py" and config.searcher.metric == "val_loss"


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the Keras tests need the keras extra")
def test_the_example_script_runs_by_hand_with_the_experiment_files_defaults(tmp_path):
    environment = {**os.environ, "HPT_CONFIG": str(EXAMPLE / "adaptive_asha.yaml"),
                   "KERAS_HOME": str(tmp_path / "keras-home"), "KERAS_BACKEND": "tensorflow",
                   "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
    environment.pop("HPT_CONTROLLER_URL", None)
    result = subprocess.run([sys.executable, str(EXAMPLE / "train.py")], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    validations = [line for line in result.stdout.splitlines() if line.startswith("[hpt local] validation")]
    assert validations and "val_loss=" in validations[-1]
    (checkpoint,) = (tmp_path / "hpt_checkpoints").iterdir()
    assert (checkpoint / "model.weights.h5").is_file()
