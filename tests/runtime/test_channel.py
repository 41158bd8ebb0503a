"""The channel of a real running experiment, sent malformed requests over raw sockets, on both transports
(HTTP, and the Unix-domain socket that trials on the controller's machine use): each gets a 4xx naming what
is wrong (or, cut short, nothing), the trial goes on reporting, and the log stays short."""

import json
import logging
import socket
import struct
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

import hpt_core
from hpt_core.channel import MAX_BODY_BYTES, attempt_secret
from hpt_core.channel_server import REFUSALS_LOGGED_PER_MINUTE
from hpt_core.runner import build_controller, create_experiment
from hpt_core.storage import Storage

MODEL_DIR = Path(__file__).parent / "model"


def exchange(connection: socket.socket, raw: bytes, finish: bool) -> bytes:
    """Send `raw` on `connection` (then close our side if `finish`); what came back until the channel closed."""
    connection.sendall(raw)
    if finish:
        connection.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := connection.recv(65536):
        reply += chunk
    return reply


def assert_a_short_log_without_traceback(caplog, capfd):
    """The refusals left a few short warning lines (rate-limited) and no traceback anywhere."""
    warnings = [record for record in caplog.records
                if record.name == "hpt_core.channel" and record.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= REFUSALS_LOGGED_PER_MINUTE + 1
    assert all(record.exc_info is None and len(record.getMessage()) < 600 for record in warnings)
    assert "Traceback" not in capfd.readouterr().err


class Running:
    """A controller serving one long trial, and what a request needs to pass as that trial."""

    def __init__(self, storage, experiment_id, controller):
        self.storage, self.experiment_id, self.controller = storage, experiment_id, controller
        self.trial_id = storage.list_trials(experiment_id)[0].id
        self.identity = {"trial_id": self.trial_id, "attempt": controller.trials[1].attempt}
        self.secret = attempt_secret(controller.secret, self.trial_id, self.identity["attempt"])
        self.address = urllib.parse.urlsplit(controller.channel.url).netloc.split(":")
        self.socket_path = str(controller.local_channel.path)

    def send(self, raw: bytes, *, finish: bool = True) -> bytes:
        """Send `raw` bytes; the reply (b"" if the channel closed without one). `finish`: close our side after."""
        with socket.create_connection((self.address[0], int(self.address[1])), timeout=30) as connection:
            return exchange(connection, raw, finish)

    def post(self, name: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """POST `body` as this trial; the reply's status and error message."""
        headers = {"Authorization": f"Bearer {self.secret}", "Content-Length": str(len(body)),
                   **(headers or {})}
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return status_and_error(self.send(f"POST /v1/{name} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body))

    def send_frames(self, raw: bytes, *, finish: bool = True) -> bytes:
        """Send `raw` bytes to the Unix-domain socket; what came back until the channel closed or went quiet."""
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(30)
            connection.connect(self.socket_path)
            return exchange(connection, raw, finish)

    def call(self, name: str, body, *, secret: str | None = None) -> tuple[int, str]:
        """Call `name` over the Unix-domain socket as this trial (or as the holder of `secret`): status, error."""
        return frame_status(self.send_frames(frame({"call": name, "secret": secret or self.secret, "body": body})))

    def report(self, **fields) -> tuple[int, str]:
        body = {**self.identity, "kind": "validation", "metrics": {"val_loss": 0.5}, "batches": 10, "epochs": 1,
                "seq": 10**9, **fields}
        return self.post("report", json.dumps(body).encode())

    def reports_stored(self) -> int:
        return len(self.storage.metrics(trial_id=self.trial_id))


def frame(message) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack(">I", len(data)) + data


def frame_status(reply: bytes) -> tuple[int, str]:
    """The status and error of the first reply frame in `reply` (0 if there is none)."""
    if len(reply) < 4:
        return 0, ""
    answer = json.loads(reply[4:4 + struct.unpack(">I", reply[:4])[0]])
    return answer["status"], answer.get("error", "")


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
    assert_a_short_log_without_traceback(caplog, capfd)


# --- the Unix-domain socket -------------------------------------------------------------------------------


def report_body(running: Running, **fields):
    return {**running.identity, "kind": "validation", "metrics": {"val_loss": 0.5}, "batches": 10, "epochs": 1,
            "seq": 10**9, **fields}


@pytest.mark.parametrize(("fields", "named"), [
    ({"batches": float("inf")}, "'batches'"),
    ({"batches": "10"}, "'batches'"),
    ({"metrics": None}, "'metrics'"),
    ({"kind": "test"}, "'kind'"),
    ({"attempt": 1.0}, "'attempt'"),
    ({"kind": "training", "metrics": {"loss": float("nan")}}, "metric 'loss' is nan"),
    ({"metrics": {"val_loss": 0.5, "accuracy": float("inf")}}, "metric 'accuracy' is inf"),
    ({"metrics": {"val_loss": 0.5, "curve": [0.5, float("-inf")]}}, "metric 'curve' is [0.5, -inf]"),
])
def test_a_socket_report_with_a_wrong_field_is_a_400_naming_it_and_nothing_is_stored(running, fields, named):
    status, error = running.call("report", report_body(running, **fields))
    assert status == 400 and named in error
    assert all(record.seq != 10**9 for record in running.storage.metrics(trial_id=running.trial_id))
    wait_for_another_report(running)


def test_a_non_finite_metric_over_http_is_a_400_naming_the_metric(running):
    body = report_body(running, kind="training", metrics={"loss": float("nan")})
    status, error = running.post("report", json.dumps(body).encode())
    assert status == 400 and "metric 'loss' is nan" in error
    assert all(record.seq != 10**9 for record in running.storage.metrics(trial_id=running.trial_id))


def test_a_socket_report_sent_again_after_its_reply_was_lost_is_stored_once(running):
    body = report_body(running, kind="training", metrics={"resent": 1})
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(running.socket_path)
        connection.sendall(frame({"call": "report", "secret": running.secret, "body": body}))  # gone before the reply
    assert running.call("report", body)[0] == 200
    assert running.call("report", body)[0] == 200
    resent = [record for record in running.storage.metrics(trial_id=running.trial_id) if "resent" in record.metrics]
    assert [(record.attempt, record.seq) for record in resent] == [(running.identity["attempt"], 10**9)]


def test_reports_sent_together_are_stored_once_each_and_a_bad_one_refuses_them_all(running):
    items = [{"kind": "training", "metrics": {"together": step}, "batches": step, "seq": 10**9 + step}
             for step in range(5)]
    body = {**running.identity, "reports": items}
    assert running.call("reports", body)[0] == 200
    assert running.post("reports", json.dumps(body).encode())[0] == 200  # a repeat, over HTTP: stored once
    together = [record for record in running.storage.metrics(trial_id=running.trial_id) if "together" in record.metrics]
    assert [record.metrics["together"] for record in together] == list(range(5))
    bad = {**running.identity, "reports": [{**items[0], "seq": 2 * 10**9}, {**items[1], "batches": -1}]}
    status, error = running.call("reports", bad)
    assert status == 400 and "reports[1]: field 'batches'" in error
    assert all(record.seq != 2 * 10**9 for record in running.storage.metrics(trial_id=running.trial_id))
    for reports in ([], "five", [1, 2]):
        status, error = running.call("reports", {**running.identity, "reports": reports})
        assert status == 400 and "'reports'" in error


def test_a_trial_s_secret_cannot_speak_for_another_trial_or_attempt_over_the_socket(running):
    other = attempt_secret(running.controller.secret, running.trial_id + 1, 1)
    assert running.call("report", report_body(running), secret=other)[0] == 401
    stale = attempt_secret(running.controller.secret, running.trial_id, running.identity["attempt"] + 1)
    body = report_body(running, attempt=running.identity["attempt"] + 1)
    assert running.call("report", body, secret=stale)[0] == 409
    assert running.call("report", report_body(running), secret="1.1." + "0" * 64)[0] == 401


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param(struct.pack(">I", MAX_BODY_BYTES + 1), 413, id="frame-too-large"),
    pytest.param(struct.pack(">I", 8) + b"not json", 400, id="not-json"),
    pytest.param(struct.pack(">I", 6) + b"[1, 2]", 400, id="not-an-object"),
    pytest.param(struct.pack(">I", 2) + b"\xff\xfe", 400, id="not-utf8"),
    pytest.param(struct.pack(">I", 200_000) + b"[" * 100_000 + b"]" * 100_000, 400, id="nested-100000-deep"),
    pytest.param(frame({"call": "report", "body": {}}), 401, id="no-secret"),
    pytest.param(frame({"call": "report", "secret": 5, "body": {}}), 401, id="secret-not-a-string"),
])
def test_a_malformed_frame_is_a_4xx_and_closes_its_connection(running, raw, expected):
    reply = running.send_frames(raw + frame({"call": "status", "secret": running.secret, "body": running.identity}),
                                finish=False)
    assert frame_status(reply)[0] == expected
    assert len(reply) == 4 + struct.unpack(">I", reply[:4])[0]  # the request after it got no answer
    wait_for_another_report(running)


@pytest.mark.parametrize(("message", "expected"), [
    ({"call": 5, "body": {}}, 400),
    ({"call": "report", "body": [1]}, 400),
    ({"call": "nonsense", "body": {}}, 404),
])
def test_a_frame_with_a_bad_call_or_body_is_a_4xx(running, message, expected):
    assert frame_status(running.send_frames(frame({**message, "secret": running.secret})))[0] == expected


def test_a_frame_cut_short_gets_no_reply_and_the_channel_goes_on(running):
    assert running.send_frames(struct.pack(">I", 100) + b'{"call": "rep') == b""
    assert running.call("status", running.identity)[0] == 200


def test_many_half_sent_frames_leave_a_short_log_and_no_traceback(running, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="hpt_core.channel")
    for _ in range(150):
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(running.socket_path)
            connection.sendall(struct.pack(">I", 1000) + b'{"call":')
    wait_for_another_report(running)
    assert_a_short_log_without_traceback(caplog, capfd)


def test_the_socket_is_in_a_folder_only_its_owner_can_enter(running):
    folder = Path(running.socket_path).parent
    assert folder.stat().st_mode & 0o777 == 0o700
