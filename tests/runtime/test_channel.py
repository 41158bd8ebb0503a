"""The channel of a real running experiment, sent malformed requests over raw sockets: each gets a 4xx
naming what is wrong (or, cut short, nothing), the trial goes on reporting, and the log stays short."""

import json
import logging
import socket
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

import hpt_core
from hpt_core.channel import MAX_BODY_BYTES, REFUSALS_LOGGED_PER_MINUTE, attempt_secret
from hpt_core.runner import build_controller, create_experiment
from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parent / "model"


class Running:
    """A controller serving one long trial, and what a request needs to pass as that trial."""

    def __init__(self, storage, experiment_id, controller):
        self.storage, self.experiment_id, self.controller = storage, experiment_id, controller
        self.trial_id = storage.list_trials(experiment_id)[0].id
        self.identity = {"trial_id": self.trial_id, "attempt": controller.trials[1].attempt}
        self.secret = attempt_secret(controller.secret, self.trial_id, self.identity["attempt"])
        self.address = urllib.parse.urlsplit(controller.channel.url).netloc.split(":")

    def send(self, raw: bytes, *, finish: bool = True) -> bytes:
        """Send `raw` bytes; the reply (b"" if the channel closed without one). `finish`: close our side after."""
        with socket.create_connection((self.address[0], int(self.address[1])), timeout=30) as connection:
            connection.sendall(raw)
            if finish:
                connection.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := connection.recv(65536):
                reply += chunk
            return reply

    def post(self, name: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """POST `body` as this trial; the reply's status and error message."""
        headers = {"Authorization": f"Bearer {self.secret}", "Content-Length": str(len(body)),
                   **(headers or {})}
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return status_and_error(self.send(f"POST /v1/{name} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body))

    def report(self, **fields) -> tuple[int, str]:
        body = {**self.identity, "kind": "validation", "metrics": {"val_loss": 0.5}, "batches": 10, "epochs": 1,
                "seq": 10**9, **fields}
        return self.post("report", json.dumps(body).encode())

    def reports_stored(self) -> int:
        return len(self.storage.metrics(trial_id=self.trial_id))


def status_and_error(reply: bytes) -> tuple[int, str]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, json.loads(body).get("error", "") if body else ""


@pytest.fixture
def running(tmp_path, monkeypatch):
    monkeypatch.setenv("HPT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRIAL_LOG", str(tmp_path / "trial-log.jsonl"))
    monkeypatch.setenv("EPOCH_SECONDS", "0.05")
    storage = Storage(f"sqlite:///{tmp_path}/hpt.db")
    config = hpt_core.load_config({
        "entrypoint": f"{sys.executable} trial.py", "reproducibility": {"experiment_seed": 1},
        "searcher": {"name": "single", "metric": "val_loss", "max_length": 2000}, "hyperparameters": {"quality": 1.0},
    })
    experiment_id = create_experiment(config, MODEL_DIR, storage)
    controller = build_controller(storage, experiment_id)
    runner = threading.Thread(target=controller.run)
    runner.start()
    try:
        while not (controller.channel and storage.list_trials(experiment_id) and 1 in controller.trials
                   and controller.trials[1].process_alive):
            time.sleep(0.05)
        yield Running(storage, experiment_id, controller)
    finally:
        controller.cancel()
        runner.join(timeout=120)
        storage.close()


def wait_for_another_report(running: Running) -> None:
    """Returns once the trial has reported again: the controller went on serving it."""
    before = running.reports_stored()
    while running.reports_stored() == before:
        time.sleep(0.05)


@pytest.mark.parametrize(("fields", "named"), [
    ({"batches": float("inf")}, "'batches'"),
    ({"batches": float("nan")}, "'batches'"),
    ({"epochs": float("-inf")}, "'epochs'"),
    ({"batches": "10"}, "'batches'"),
    ({"batches": 2.5}, "'batches'"),
    ({"batches": True}, "'batches'"),
    ({"batches": -1}, "'batches'"),
    ({"batches": 2**64}, "'batches'"),
    ({"metrics": [["val_loss", 0.5]]}, "'metrics'"),
    ({"metrics": None}, "'metrics'"),
    ({"kind": "test"}, "'kind'"),
    ({"stop_requested": "yes"}, "'stop_requested'"),
    ({"trial_id": [1]}, "'trial_id'"),
    ({"attempt": 1.0}, "'attempt'"),
])
def test_a_report_with_a_wrong_field_is_a_400_naming_it_and_nothing_is_stored(running, fields, named):
    before = running.reports_stored()
    status, error = running.report(**fields)
    assert status == 400 and named in error and "must be" in error
    assert running.reports_stored() in (before, before + 1)  # only the trial's own report, never ours
    assert all(record.batches != 10 or record.metrics != {"val_loss": 0.5}
               for record in running.storage.metrics(trial_id=running.trial_id))
    wait_for_another_report(running)


def test_a_report_sent_again_after_its_reply_was_lost_is_stored_once(running):
    body = json.dumps({**running.identity, "kind": "training", "metrics": {"resent": 1}, "batches": 10, "epochs": 1,
                       "seq": 10**9}).encode()
    head = (f"POST /v1/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {running.secret}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((running.address[0], int(running.address[1]))) as connection:
        connection.sendall(head + body)  # and gone before the reply
    assert running.post("report", body)[0] == 200
    assert running.post("report", body)[0] == 200
    resent = [record for record in running.storage.metrics(trial_id=running.trial_id) if "resent" in record.metrics]
    assert [(record.attempt, record.seq) for record in resent] == [(running.identity["attempt"], 10**9)]


def test_a_report_without_a_required_field_is_a_400_naming_it(running):
    body = {**running.identity, "kind": "validation", "metrics": {"val_loss": 0.5}}
    status, error = running.post("report", json.dumps(body).encode())
    assert status == 400 and "'batches' is required" in error


@pytest.mark.parametrize(("fields", "named"), [
    ({"batches": float("inf")}, "'batches'"),
    ({"checkpoint_id": 5}, "'checkpoint_id'"),
    ({"metadata": ["not", "an", "object"]}, "'metadata'"),
])
def test_a_checkpoint_with_a_wrong_field_is_a_400_naming_it(running, fields, named):
    body = {**running.identity, "checkpoint_id": "00000000-0000-0000-0000-000000000000", "batches": 10, **fields}
    status, error = running.post("checkpoint", json.dumps(body).encode())
    assert status == 400 and named in error


@pytest.mark.parametrize(("body", "headers", "expected"), [
    (b"{}", {"Content-Length": "abc"}, 400),
    (b"{}", {"Content-Length": "-5"}, 400),
    (b"{}", {"Content-Length": str(MAX_BODY_BYTES + 1)}, 413),
    (b"{}", {"Transfer-Encoding": "chunked"}, 411),
    (b"not json", {}, 400),
    (b"[1, 2]", {}, 400),
    (b"\xff\xfe", {}, 400),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, {}, 400, id="nested-100000-deep"),
])
def test_a_malformed_body_is_a_4xx(running, body, headers, expected):
    status, error = running.post("report", body, headers)
    assert status == expected and error


def test_a_body_cut_short_is_a_400_saying_how_much_arrived(running):
    head = (f"POST /v1/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {running.secret}\r\n"
            "Content-Length: 100\r\n\r\n")
    status, error = status_and_error(running.send(head.encode() + b'{"trial_id": 1'))
    assert status == 400 and "14 of its 100 bytes" in error


@pytest.mark.parametrize(("request_head", "expected"), [
    ("GET /v1/report HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (f"POST /v1/{'a' * 70_000} HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (f"POST /v1/report HTTP/1.1\r\nHost: x\r\nX-Long: {'a' * 70_000}\r\n\r\n", 431),
    ("POST /v1/report HTTP/1.1\r\n" + "".join(f"X-{number}: 1\r\n" for number in range(150)) + "\r\n", 431),
])
def test_a_malformed_request_line_or_headers_are_a_4xx(running, request_head, expected):
    status, _ = status_and_error(running.send(request_head.encode()))
    assert status == expected


def test_many_half_sent_requests_leave_a_short_log_and_no_traceback(running, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="hpt_core.channel")
    head = (f"POST /v1/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {running.secret}\r\n"
            "Content-Length: 1000\r\n\r\n{\"trial_id\":").encode()
    for _ in range(150):
        with socket.create_connection((running.address[0], int(running.address[1]))) as connection:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            connection.sendall(head)  # then closed at once with a reset: the reply has nowhere to go
    wait_for_another_report(running)
    warnings = [record for record in caplog.records
                if record.name == "hpt_core.channel" and record.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= REFUSALS_LOGGED_PER_MINUTE + 1
    assert all(record.exc_info is None and len(record.getMessage()) < 600 for record in warnings)
    assert "Traceback" not in capfd.readouterr().err
