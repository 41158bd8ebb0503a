"""Helpers of the dashboard's tests: the hostile names, the session's site of real experiments, the `hpt` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
