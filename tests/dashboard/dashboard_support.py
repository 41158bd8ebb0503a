"""Helpers of the dashboard's tests: the hostile names, the session's site of real experiments, HTTP requests."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from real_experiments import ExperimentFolder

from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parent / "model"
DASHBOARD_TOKEN = "dashboard-test-token"
HOSTILE_HPARAM = "<img src=x onerror=alert(1)>"
HOSTILE_VALUE = "<script>alert(2)</script>"
HOSTILE_METRIC = "<img src=x onerror=alert(3)>"
HOSTILE_NAME = "<svg onload=alert(4)>"
EXPERIMENT_TIMEOUT = 240


def dashboard_experiments(path: Path) -> ExperimentFolder:
    """A folder of experiments of the dashboard's trial (model/trial.py): 1 restart, seed 7."""
    return ExperimentFolder(path, MODEL_DIR, defaults={"max_restarts": 1, "reproducibility": {"experiment_seed": 7}})


@dataclass(frozen=True)
class DashboardSite:
    """The session's experiments (their folder) and their ids."""

    experiments: ExperimentFolder
    asha_id: int
    pbt_id: int
    hostile_id: int
    running_id: int

    @property
    def storage_url(self) -> str:
        return self.experiments.storage_url

    def storage(self) -> Storage:
        """A new Storage on the site's database (close it after use)."""
        return self.experiments.storage()

    def hpt(self, *args: str, timeout: float = EXPERIMENT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run the `hpt` command with this site's HPT_HOME and storage."""
        return self.experiments.hpt(*args, timeout=timeout)


@dataclass(frozen=True)
class Reply:
    """An HTTP response: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, *, token: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    """One request with the standard library's client; HTTP errors come back as replies, not exceptions."""
    request = urllib.request.Request(url, method=method, headers=dict(headers or {}))
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Reply(response.status, {name.lower(): value for name, value in response.headers.items()},
                         response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, {name.lower(): value for name, value in error.headers.items()}, error.read())


def get_json(base_url: str, path: str, **params: Any) -> Any:
    """GET base_url + path (with query parameters) and return its JSON, asserting a 200."""
    query = urllib.parse.urlencode({name: value for name, value in params.items() if value is not None})
    reply = http("GET", base_url.rstrip("/") + path + (f"?{query}" if query else ""))
    assert reply.status == 200, (path, params, reply.status, reply.body[:500])
    return reply.json()
