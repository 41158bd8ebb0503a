"""The link between trials and their controller: JSON over HTTP, authenticated by a secret per trial attempt.

The controller serves; each trial is a client on persistent connections. A request returns only after the
controller has stored what it carried, so a report that has returned is durable; every request is safe to
send again (reports carry their attempt's sequence number, checkpoints their id), so the client retries
until it gets an answer, and finds a controller that moved (a resumed experiment) through the channel file.
HTTP lets the link cross machines (the Ray executor binds it to an address the nodes can reach).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import re
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from hpt_core.errors import SearcherError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest body a request may carry (413 beyond). The request line and headers are bounded by the standard
library's HTTP server: 64 KiB a line (414 or 431 beyond), 100 header lines (431)."""
READ_TIMEOUT_SECONDS = 30.0
"""How long the channel waits for the rest of a request that stopped arriving before it drops the connection."""
REFUSALS_LOGGED_PER_MINUTE = 10
"""Refused requests are logged one short line each, this many a minute; the rest are counted in a summary line."""
STOP_SECONDS = 0.02
"""How long `ChannelServer.stop` may wait for the serving thread to notice (its poll interval)."""
CHECKPOINT_METADATA_FILE = "hpt_checkpoint.json"
"""Written last into a checkpoint directory: a directory holding it is a complete checkpoint."""
API_PREFIX = "/v1/"
RETRY_PAUSE_SECONDS = 0.2
"""The pause between two tries of a request the controller did not answer (doubling up to 1 s)."""
WAITING_NOTICE_SECONDS = 1.0
"""A request unanswered this long writes one line to the trial's output, and another once it is answered."""
_CONTENT_LENGTH = re.compile(r"[0-9]{1,20}")
_ATTEMPT_SECRET = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})\.([0-9a-f]{64})")

Sender = tuple[int, int]
"""Who sent a request: (trial id, attempt), as its secret proves."""


def attempt_secret(experiment_secret: str, trial_id: int, attempt: int) -> str:
    """The secret of one attempt of one trial: it names them and is signed with the experiment's secret, which
    no trial holds, so a trial can speak only for itself.

    >>> attempt_secret("s", 3, 1).startswith("3.1.")
    True
    """
    return f"{trial_id}.{attempt}.{_signature(experiment_secret, trial_id, attempt)}"


def _signature(experiment_secret: str, trial_id: int, attempt: int) -> str:
    return hmac.new(experiment_secret.encode(), f"{trial_id}.{attempt}".encode(), hashlib.sha256).hexdigest()


class ChannelRefused(Exception):
    """The controller refused a request; `status` is the HTTP status (401 unknown sender, 409 stale attempt)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class ControllerUnreachable(ConnectionError):
    """The controller did not answer within the retry window."""


Handler = Callable[[str, dict[str, Any], Sender], dict[str, Any]]


class RefusalLog:
    """Logs one short warning per refused request, at most `per_minute` a minute; those over the limit are
    counted and their number logged once the minute is over (with the next refusal)."""

    def __init__(self, per_minute: int = REFUSALS_LOGGED_PER_MINUTE) -> None:
        self._per_minute = per_minute
        self._lock = threading.Lock()
        self._minute_started = time.monotonic()
        self._logged = 0
        self._unlogged = 0

    def refused(self, message: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._minute_started >= 60.0:
                if self._unlogged:
                    logger.warning("channel: %d more requests were refused in the last minute (not logged)",
                                   self._unlogged)
                self._minute_started, self._logged, self._unlogged = now, 0, 0
            if self._logged < self._per_minute:
                self._logged += 1
                logger.warning("channel: %s", message)
            else:
                self._unlogged += 1


class ChannelServer:
    """Serves trial requests to `handler(name, body, sender) -> reply`; refuses anyone without an attempt's
    secret made from the experiment's (`attempt_secret`).

    The handler may raise `ChannelRefused` to answer with an error status, and `ValueError`, `TypeError`,
    `KeyError` or `SearcherError` for a 400. A malformed request (bad headers, a body that is not a JSON
    object, too large, or cut short) gets a 4xx and one line in the log, never a traceback.
    """

    def __init__(self, handler: Handler, secret: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._secret = secret
        self.refusals = RefusalLog()
        self._server = _QuietHTTPServer((host, port), self._request_handler_class(), self.refusals)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": STOP_SECONDS},
                                        name="hpt-channel", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "ChannelServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _sender(self, header: str | None) -> Sender | None:
        """The (trial id, attempt) whose secret the Authorization header carries; None if it carries none."""
        match = _ATTEMPT_SECRET.fullmatch((header or "").removeprefix("Bearer "))
        if match is None or not (header or "").startswith("Bearer "):
            return None
        trial_id, attempt = int(match[1]), int(match[2])
        expected = _signature(self._secret, trial_id, attempt)
        return (trial_id, attempt) if hmac.compare_digest(match[3], expected) else None

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        channel = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = READ_TIMEOUT_SECONDS
            disable_nagle_algorithm = True  # a reply's head and body are two writes: never hold the second back

            def parse_request(self) -> bool:
                if not super().parse_request():
                    return False
                if self.command != "POST":
                    self._refuse(405, f"method {self.command} is not allowed; the channel takes POST")
                    return False
                return True

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                sender = channel._sender(self.headers.get("Authorization"))
                if sender is None:
                    self._refuse(401, "unknown sender: the secret of one of this experiment's trial attempts "
                                      "is required")
                    return
                if not self.path.startswith(API_PREFIX):
                    self._refuse(404, f"no such endpoint: {self.path}")
                    return
                try:
                    body = self._read_body()
                    reply = channel._handler(self.path.removeprefix(API_PREFIX), body, sender)
                except ChannelRefused as refused:
                    self._refuse(refused.status, refused.message)
                except (ValueError, KeyError, TypeError, SearcherError) as error:
                    self._refuse(400, str(error))
                except Exception as error:  # the controller must keep serving
                    logger.exception("channel request %s failed", self.path)
                    self._reply(500, {"error": f"{type(error).__name__}: {error}"})
                else:
                    self._reply(200, reply)

            def _read_body(self) -> dict[str, Any]:
                """The request's body, a JSON object; ChannelRefused if it is malformed, too large or cut short."""
                if self.headers.get("Transfer-Encoding") is not None:
                    raise ChannelRefused(411, "a request must give its body's length in Content-Length, "
                                              "not send it in chunks (Transfer-Encoding)")
                declared = self.headers.get("Content-Length", "0").strip()
                if not _CONTENT_LENGTH.fullmatch(declared):
                    raise ChannelRefused(400, f"Content-Length must be a whole number of bytes, but got "
                                              f"{declared[:40]!r}")
                length = int(declared)
                if length > MAX_BODY_BYTES:
                    raise ChannelRefused(413, f"a request may carry at most {MAX_BODY_BYTES} bytes, but "
                                              f"Content-Length is {length}")
                try:
                    data = self.rfile.read(length)
                except TimeoutError:
                    raise ChannelRefused(408, f"the body did not arrive within {READ_TIMEOUT_SECONDS:g} s") from None
                except OSError as error:
                    raise ChannelRefused(400, f"the body could not be read: {error}") from None
                if len(data) < length:
                    raise ChannelRefused(400, f"the body ended after {len(data)} of its {length} bytes")
                try:
                    body = json.loads(data or b"{}")
                except (ValueError, RecursionError) as error:
                    raise ChannelRefused(400, f"the body must be JSON: {str(error)[:200]}") from None
                if not isinstance(body, dict):
                    raise ChannelRefused(400, f"the body must be a JSON object, but got a {type(body).__name__}")
                return body

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                """The standard library's refusals (a bad request line, headers too long or too many), as ours."""
                self._refuse(code, message or explain or HTTPStatus(code).phrase)

            def _refuse(self, status: int, message: str) -> None:
                path = getattr(self, "path", "")  # unset when the request line itself is refused
                channel.refusals.refused(f"refused {self.command or 'a request'} {path[:100]!r} "
                                         f"from {self.client_address[0]} with {status}: {message[:300]}")
                self.close_connection = True  # what is left of the request is not read
                self._reply(status, {"error": message})

            def _reply(self, status: int, body: Mapping[str, Any]) -> None:
                data = json.dumps(body, allow_nan=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the sender is gone; nothing to tell it
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("channel: " + format, *args)

        return RequestHandler


class _QuietHTTPServer(ThreadingHTTPServer):
    """An HTTP server that logs a connection's failure (a sender gone mid-request) as one refusal line, where
    the standard library prints a traceback to stderr."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 refusals: RefusalLog) -> None:
        super().__init__(address, handler)
        self._refusals = refusals

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        self._refusals.refused(f"dropped a connection from {client_address[0]}: {type(error).__name__}: "
                               f"{str(error)[:200]}")


class ChannelClient:
    """What a trial uses to talk to its controller: one persistent connection per thread; a request that is
    not answered is sent again (every request is safe to repeat) until `retry_seconds` have passed, and a
    controller that moved is found again through `channel_file` (JSON `{"url": ...}`, rewritten by each
    controller of the experiment). Waits longer than a second are noted in `log` (the trial's output)."""

    def __init__(self, url: str, secret: str, *, channel_file: str | Path | None = None, timeout: float = 60.0,
                 log: TextIO | None = None) -> None:
        self.url = url.rstrip("/")
        self._secret = secret
        self._channel_file = Path(channel_file) if channel_file else None
        self.timeout = timeout
        self._log = log
        self._connections = threading.local()

    def call(self, name: str, body: Mapping[str, Any], retry_seconds: float = 10.0) -> dict[str, Any]:
        """Send a request; its reply. ChannelRefused when the controller refuses it, ControllerUnreachable when
        no controller answered for `retry_seconds` (math.inf: wait as long as it takes)."""
        data = json.dumps(body, allow_nan=True).encode()
        started = time.monotonic()
        pause, noted = RETRY_PAUSE_SECONDS, False
        while True:
            try:
                reply = self._send(name, data)
            except (OSError, http.client.HTTPException) as error:
                self._drop_connection()
                waited = time.monotonic() - started
                if waited >= retry_seconds:
                    if noted:
                        self._note(f"gave up on {name} after {waited:.1f} s: the controller did not answer")
                    raise ControllerUnreachable(f"the controller at {self.url} does not answer: {error!r}") from None
                if waited >= WAITING_NOTICE_SECONDS and not noted:
                    noted = True
                    limit = "as long as it takes" if retry_seconds == float("inf") else f"up to {retry_seconds:.0f} s"
                    self._note(f"the controller at {self.url} does not answer ({type(error).__name__}); "
                               f"{name} {_describe(body)} waits and retries, {limit}")
                time.sleep(min(pause, max(0.0, retry_seconds - waited)))
                pause = min(2 * pause, 1.0)
                self._rediscover()
                continue
            if noted:
                self._note(f"{name} {_describe(body)} answered by the controller at {self.url} after "
                           f"{time.monotonic() - started:.1f} s")
            return reply

    def _send(self, name: str, data: bytes) -> dict[str, Any]:
        connection = self._connection()
        connection.request("POST", f"{self._path_prefix}{API_PREFIX}{name}", body=data, headers={
            "Authorization": f"Bearer {self._secret}", "Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        if response.will_close:
            self._drop_connection()
        if response.status != 200:
            raise ChannelRefused(response.status, _error_message(payload, response.reason))
        return json.loads(payload or b"{}")

    @property
    def _path_prefix(self) -> str:
        return urllib.parse.urlsplit(self.url).path

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._connections, "current", None)
        if connection is None or getattr(self._connections, "url", None) != self.url:
            parts = urllib.parse.urlsplit(self.url)
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
            self._connections.current, self._connections.url = connection, self.url
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._connections, "current", None)
        if connection is not None:
            connection.close()
            self._connections.current = None

    def _rediscover(self) -> None:
        """Follow the experiment's channel to the address its current controller wrote."""
        if self._channel_file is None:
            return
        try:
            url = str(json.loads(self._channel_file.read_text())["url"]).rstrip("/")
        except (OSError, ValueError, KeyError, TypeError):
            return
        if url != self.url:
            self._note(f"the controller moved: now at {url}")
            self.url = url

    def _note(self, message: str) -> None:
        print(f"hpt: {message}", file=self._log or sys.stderr, flush=True)


def _describe(body: Mapping[str, Any]) -> str:
    return f"(seq {body['seq']})" if "seq" in body else ""


def _error_message(payload: bytes, reason: str) -> str:
    try:
        return str(json.loads(payload).get("error", reason))
    except (ValueError, AttributeError):
        return str(reason)
