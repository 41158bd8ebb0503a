"""Helpers of the results tests: run a real experiment of the test model, and the `hpt` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import hpt_core
from hpt_core.runner import build_controller, create_experiment
from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parents[1] / "runtime" / "model"


@dataclass
class FinishedExperiment:
    home: Path
    storage_url: str
    experiment_id: int
    state: str

    def storage(self) -> Storage:
        return Storage(self.storage_url)

    def trial_log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.home / "trial-log.jsonl").read_text().splitlines()]

    def hpt(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the `hpt` command on this experiment's storage."""
        return run_hpt(self.home, self.storage_url, *args, cwd=cwd)


def run_hpt(home: Path, storage_url: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HPT_HOME": str(home), "HPT_STORAGE": storage_url, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "hpt_core.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def run_experiment(home: Path, storage_url: str, fields: dict[str, Any]) -> tuple[int, str]:
    """Run an experiment of the test model to its end, with HPT_HOME and TRIAL_LOG under `home`."""
    config = hpt_core.load_config({"entrypoint": f"{sys.executable} trial.py", "max_restarts": 2,
                                   "reproducibility": {"experiment_seed": 1}, **fields})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPT_HOME", str(home))
        patch.setenv("TRIAL_LOG", str(home / "trial-log.jsonl"))
        patch.setenv("EPOCH_SECONDS", "0.01")
        storage = Storage(storage_url)
        try:
            experiment_id = create_experiment(config, MODEL_DIR, storage)
            state = build_controller(storage, experiment_id).run()
        finally:
            storage.close()
    return experiment_id, state
