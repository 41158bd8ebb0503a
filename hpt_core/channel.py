"""The link between trials and their controller: JSON over HTTP, authenticated by a per-experiment secret.

The controller serves; each trial is a client. A request returns only after the controller has
stored what it carried, so a report that has returned is durable. HTTP lets the link cross
machines (the Ray executor binds it to an address the nodes can reach).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping

from hpt_core.errors import SearcherError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
CHECKPOINT_METADATA_FILE = "hpt_checkpoint.json"
"""Written last into a checkpoint directory: a directory holding it is a complete checkpoint."""
API_PREFIX = "/v1/"


class ChannelRefused(Exception):
    """The controller refused a request; `status` is the HTTP status (401 unknown sender, 409 stale attempt)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class ControllerUnreachable(ConnectionError):
    """The controller did not answer within the retry window."""


Handler = Callable[[str, dict[str, Any]], dict[str, Any]]


class ChannelServer:
    """Serves trial requests to `handler(name, body) -> reply`; refuses anyone without the secret.

    The handler may raise `ChannelRefused` to answer with an error status.
    """

    def __init__(self, handler: Handler, secret: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._secret = secret.encode()
        self._server = ThreadingHTTPServer((host, port), self._request_handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hpt-channel", daemon=True)

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

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header.removeprefix("Bearer ").encode(), self._secret)

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        channel = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                if not channel._authorised(self.headers.get("Authorization")):
                    self._reply(401, {"error": "unknown sender: this experiment's secret is required"})
                    return
                if not self.path.startswith(API_PREFIX):
                    self._reply(404, {"error": f"no such endpoint: {self.path}"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._reply(413, {"error": f"a request may carry at most {MAX_BODY_BYTES} bytes"})
                    return
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    if not isinstance(body, dict):
                        raise ValueError("the body must be a JSON object")
                    reply = channel._handler(self.path.removeprefix(API_PREFIX), body)
                except ChannelRefused as refused:
                    self._reply(refused.status, {"error": refused.message})
                except (ValueError, KeyError, TypeError, SearcherError) as error:
                    self._reply(400, {"error": str(error)})
                except Exception as error:  # the controller must keep serving
                    logger.exception("channel request %s failed", self.path)
                    self._reply(500, {"error": f"{type(error).__name__}: {error}"})
                else:
                    self._reply(200, reply)

            def _reply(self, status: int, body: Mapping[str, Any]) -> None:
                data = json.dumps(body, allow_nan=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("channel: " + format, *args)

        return RequestHandler


class ChannelClient:
    """What a trial uses to talk to its controller; retries while the controller is briefly unreachable."""

    def __init__(self, url: str, secret: str, retry_seconds: float = 10.0, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._secret = secret
        self.retry_seconds = retry_seconds
        self.timeout = timeout

    def call(self, name: str, body: Mapping[str, Any], retry_seconds: float | None = None) -> dict[str, Any]:
        data = json.dumps(body, allow_nan=True).encode()
        request = urllib.request.Request(
            f"{self.url}{API_PREFIX}{name}",
            data=data,
            method="POST",
            headers={"Authorization": f"Bearer {self._secret}", "Content-Type": "application/json"},
        )
        deadline = time.monotonic() + (self.retry_seconds if retry_seconds is None else retry_seconds)
        while True:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as error:
                raise ChannelRefused(error.code, _error_message(error)) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                if time.monotonic() >= deadline:
                    raise ControllerUnreachable(f"the controller at {self.url} does not answer: {error}") from None
                time.sleep(0.2)


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read()).get("error", error.reason))
    except (ValueError, AttributeError):
        return str(error.reason)
