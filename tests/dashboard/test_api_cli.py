"""`hpt dashboard`: where it listens, what it refuses, and `hpt experiment create` pointing to it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from http.client import HTTPConnection

import pytest
from dashboard_support import EXPERIMENT_TIMEOUT, MODEL_DIR, dashboard_experiments, http


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def experiments(tmp_path):
    return dashboard_experiments(tmp_path)


@pytest.fixture
def running_dashboard(experiments):
    """`hpt dashboard` on a free port over the experiments' storage (SQLite in their HPT_HOME), stopped with
    Ctrl-C (SIGINT) at the end."""
    port = free_port()
    process = experiments.start_hpt("dashboard", "--port", str(port), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            if http("GET", f"{url}api/v1/experiments").status == 200:
                break
        except OSError:
            pass
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.1)
    try:
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)


def test_listening_beyond_loopback_without_a_token_is_refused(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "HPT_DASHBOARD_TOKEN"}
    completed = subprocess.run([sys.executable, "-m", "hpt_core.cli", "dashboard", "--host", "0.0.0.0", "--port",
                                str(free_port()), "--storage", f"sqlite:///{tmp_path}/hpt.db"],
                               env=env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert "--host" in completed.stderr and "0.0.0.0" in completed.stderr and "token" in completed.stderr


def test_experiment_create_prints_the_url_of_the_running_dashboard(running_dashboard, experiments):
    process, url = running_dashboard
    exp = experiments.write_file("single", {"name": "single", "metric": "val_loss", "max_length": {"epochs": 1}},
                                 {"lr": 0.1}, name="single")
    created = experiments.hpt("experiment", "create", str(exp), str(MODEL_DIR), "--quiet", timeout=EXPERIMENT_TIMEOUT)
    assert created.returncode == 0, created.stderr
    experiment_id = int(created.stdout.split()[1])
    assert f"{url}#/experiments/{experiment_id}" in created.stdout
    assert http("GET", f"{url}api/v1/experiments/{experiment_id}").json()["state"] == "COMPLETED"

    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    again = experiments.hpt("experiment", "create", str(exp), str(MODEL_DIR), "--quiet", timeout=EXPERIMENT_TIMEOUT)
    assert again.returncode == 0 and "watch it in the dashboard" not in again.stdout and url not in again.stdout
    suggestion = re.search(r"run `(\S+) dashboard` and open http://127\.0\.0\.1:8080/#/experiments/(\d+)",
                           again.stdout)
    assert suggestion and int(suggestion[2]) == experiment_id + 1 and shutil.which(suggestion[1]) is not None



def test_beyond_loopback_every_request_needs_the_token_which_a_browser_keeps_in_a_cookie(tmp_path):
    port = free_port()
    env = {**os.environ, "HPT_DASHBOARD_TOKEN": "s3cret"}
    process = subprocess.Popen([sys.executable, "-m", "hpt_core.cli", "dashboard", "--host", "0.0.0.0", "--port",
                                str(port), "--storage", f"sqlite:///{tmp_path}/hpt.db"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                anonymous = http("GET", f"{url}/api/v1/experiments")
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)
        assert anonymous.status == 401
        assert http("GET", f"{url}/").status == 401
        assert http("GET", f"{url}/api/v1/experiments", headers={"Authorization": "Bearer wrong"}).status == 401
        assert http("GET", f"{url}/api/v1/experiments", headers={"Authorization": "Bearer s3cret"}).status == 200

        connection = HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/?token=s3cret")
        login = connection.getresponse()
        assert (login.status, login.getheader("location")) == (303, "/")
        cookie = login.getheader("set-cookie")
        connection.close()
        assert "hpt_dashboard_token=s3cret" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        cookie_header = {"Cookie": "hpt_dashboard_token=s3cret"}
        assert http("GET", f"{url}/api/v1/experiments", headers=cookie_header).status == 200
        # the cookie lets the page read; a write still needs the header (no cross-site request can forge it)
        assert http("POST", f"{url}/api/v1/experiments/1/pause", headers=cookie_header).status == 401
        assert http("GET", f"{url}/?token=wrong").status == 401
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
