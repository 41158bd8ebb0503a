"""Where a running dashboard leaves its address (`$HPT_HOME/dashboard.json`), so that other `hpt` commands
can point to it.

>>> import tempfile
>>> from pathlib import Path
>>> home = Path(tempfile.mkdtemp())
>>> _ = record_running("http://127.0.0.1:8080/", "sqlite:////data/hpt.db", home=home)
>>> running_dashboard_url("sqlite:////data/hpt.db", home=home)
'http://127.0.0.1:8080/'
>>> running_dashboard_url("sqlite:////other/hpt.db", home=home) is None
True
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from hpt_core.storage import hpt_home

RECORD_FILE = "dashboard.json"


def record_running(url: str, storage_url: str, *, home: Path | None = None, pid: int | None = None) -> Path:
    """Note that this process (or `pid`) serves the dashboard of `storage_url` at `url`; returns the file."""
    path = (home or hpt_home()) / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"url": url, "storage": _without_password(storage_url), "pid": os.getpid() if pid is None else pid}
    staging = path.with_name(f".{RECORD_FILE}.{os.getpid()}")
    staging.write_text(json.dumps(record) + "\n")
    os.replace(staging, path)
    return path


def forget_running(*, home: Path | None = None, pid: int | None = None) -> None:
    """Remove the record if it is this process's (or `pid`'s)."""
    path = (home or hpt_home()) / RECORD_FILE
    record = _read(path)
    if record is not None and record.get("pid") == (os.getpid() if pid is None else pid):
        path.unlink(missing_ok=True)


def running_dashboard_url(storage_url: str, *, home: Path | None = None) -> str | None:
    """The URL of the dashboard serving `storage_url`, if its process is alive; else None."""
    record = _read((home or hpt_home()) / RECORD_FILE)
    if record is None or record.get("storage") != _without_password(storage_url):
        return None
    pid, url = record.get("pid"), record.get("url")
    if not isinstance(pid, int) or not isinstance(url, str) or not _alive(pid):
        return None
    return url


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _without_password(storage_url: str) -> str:
    return make_url(storage_url).render_as_string(hide_password=True)
