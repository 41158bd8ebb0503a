"""Helpers of the dashboard's tests: the hostile names, the session's site of real experiments, the `hpt` command."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parent / "model"
DASHBOARD_TOKEN = "dashboard-test-token"
HOSTILE_HPARAM = "<img src=x onerror=alert(1)>"
HOSTILE_VALUE = "<script>alert(2)</script>"
HOSTILE_METRIC = "<img src=x onerror=alert(3)>"
HOSTILE_NAME = "<svg onload=alert(4)>"
EXPERIMENT_TIMEOUT = 240


@dataclass(frozen=True)
class DashboardSite:
    """The session's storage and the ids of its experiments."""

    home: Path
    storage_url: str
    asha_id: int
    pbt_id: int
    hostile_id: int
    running_id: int

    def storage(self) -> Storage:
        """A new Storage on the site's database (close it after use)."""
        return Storage(self.storage_url)

    def hpt(self, *args: str, timeout: float = EXPERIMENT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run the `hpt` command with this site's HPT_HOME and storage."""
        return run_hpt(self.home, self.storage_url, *args, timeout=timeout)


def run_hpt(home: Path, storage_url: str, *args: str, timeout: float = EXPERIMENT_TIMEOUT,
            ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HPT_HOME": str(home), "HPT_STORAGE": storage_url, "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "hpt_core.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def experiment_file(folder: Path, name: str, searcher: dict, hyperparameters: dict, **fields: object) -> Path:
    """An experiment file of the test trial, written to `folder`."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": fields.pop("title", name), "entrypoint": f"{sys.executable} trial.py", "max_restarts": 1,
        "reproducibility": {"experiment_seed": 7}, "searcher": searcher, "hyperparameters": hyperparameters,
        **fields,
    }, allow_unicode=True))
    return path
