"""The `hpt` command's skeleton: help, version, config check, preview."""

import subprocess
import sys
from pathlib import Path

import yaml

import hpt_core

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
