"""The controller's end of the channel: serves trials' requests over a Unix-domain socket (trials on this
machine) and over HTTP (trials elsewhere), under the same rules.

Every request must carry the secret of one of the experiment's trial attempts (`channel.attempt_secret`).
The handler receives requests in batches and answers each: the socket server hands it every request that
arrived while it was busy (so their reports share one commit), the HTTP server one request per connection
thread (its group commit merges them). A malformed request (a frame or body too large, not a JSON object,
cut short, a bad header) gets a 4xx and one short line in the log (at most `REFUSALS_LOGGED_PER_MINUTE` a
minute), never a traceback; the connection is then closed.
"""

from __future__ import annotations

import abc
import hmac
import json
import logging
import os
import re
import selectors
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping, Self

from hpt_core.channel import (API_PREFIX, FRAME_HEADER, MAX_BODY_BYTES, SOCKET_SCHEME, ChannelRefused, Sender,
                              signature)
from hpt_core.errors import SearcherError

logger = logging.getLogger("hpt_core.channel")

READ_TIMEOUT_SECONDS = 30.0
"""How long the channel waits for the rest of a request that stopped arriving before it drops the connection."""
REFUSALS_LOGGED_PER_MINUTE = 10
"""Refused requests are logged one short line each, this many a minute; the rest are counted in a summary line."""
MAX_CONNECTIONS = 1024
"""Socket connections open at once (two a trial: its reports and its poller); more are refused."""
GATHER_SECONDS = 0.002
"""How long the socket server waits for the next reports of the trials whose training reports it just answered
before it commits what it has: trials reporting in a loop then share one commit rather than alternating."""
REPORT_CALLS = ("report", "reports")
"""The calls that carry reports: stored in one group commit with the other trials', then answered."""
SWEEP_SECONDS = 1.0
"""How often the socket server looks for connections stalled in the middle of a frame."""
FOLDER_PREFIX, SOCKET_NAME = "hpt-channel-", "channel.sock"
"""The socket is `<temporary folder>/hpt-channel-<random>/channel.sock`."""
MAX_SOCKET_PATH = 100
"""A Unix socket's path is limited to about 104 bytes; with a longer temporary folder only HTTP is served."""
_CONTENT_LENGTH = re.compile(r"[0-9]{1,20}")
_ATTEMPT_SECRET = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})\.([0-9a-f]{64})")


@dataclass(frozen=True)
class Request:
    """One authenticated request: the call's name (`report`, `start`, ...), its JSON body and its sender."""

    name: str
    body: dict[str, Any]
    sender: Sender


Handler = Callable[[Sequence[Request]], list[Any]]
"""Answers each request, in order: its reply, or the exception that refuses it (`ChannelRefused` for its
status; `ValueError`, `TypeError`, `KeyError` or `SearcherError` for a 400; anything else a 500)."""


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


class Authenticator:
    """Who holds a secret: the (trial id, attempt) it was made for with the experiment's secret, or None."""

    def __init__(self, experiment_secret: str) -> None:
        self._experiment_secret = experiment_secret
        self._known: dict[str, Sender] = {}  # only secrets that proved right: as many as the trials' attempts

    def sender(self, secret: Any) -> Sender | None:
        if not isinstance(secret, str):
            return None
        known = self._known.get(secret)
        if known is not None:
            return known
        match = _ATTEMPT_SECRET.fullmatch(secret)
        if match is None:
            return None
        trial_id, attempt = int(match[1]), int(match[2])
        if not hmac.compare_digest(match[3], signature(self._experiment_secret, trial_id, attempt)):
            return None
        self._known[secret] = (trial_id, attempt)
        return trial_id, attempt


def status_of(answer: Any, name: str) -> tuple[int, dict[str, Any]]:
    """The status and body that tell a trial the handler's answer to its request `name`."""
    if isinstance(answer, ChannelRefused):
        return answer.status, {"error": answer.message}
    if isinstance(answer, (ValueError, KeyError, TypeError, SearcherError)):
        return 400, {"error": str(answer)}
    if isinstance(answer, Exception):  # the controller must keep serving
        logger.error("channel request %s failed", name, exc_info=answer)
        return 500, {"error": f"{type(answer).__name__}: {answer}"}
    return 200, answer


def _reports_again(request: Request) -> bool:
    """Whether the trial that sent `request` is likely to send its next report right away: one reporting
    training progress is (a loop); after a validation it evaluates, checkpoints or ends."""
    return request.name == "reports" or (request.name == "report" and request.body.get("kind") == "training")


def _answer_one(handler: Handler, request: Request) -> Any:
    try:
        return handler([request])[0]
    except Exception as error:
        return error


class _Waker:
    """Wakes a serving thread blocked in `select` (its `read_end` becomes readable), so that `stop` is immediate."""

    def __init__(self) -> None:
        self.read_end, self._write_end = socket.socketpair()

    def wake(self) -> None:
        self._write_end.send(b"\0")

    def close(self) -> None:
        self.read_end.close()
        self._write_end.close()


class _ChannelServer(abc.ABC):
    """What both servers share: the handler, the secret's check, the refusal log, and one serving thread
    (`_serve`) that `stop` wakes and joins before `_release` frees what the server holds."""

    def __init__(self, handler: Handler, secret: str, thread_name: str) -> None:
        self._handler = handler
        self._authenticator = Authenticator(secret)
        self.refusals = RefusalLog()
        self._stopping = threading.Event()
        self._waker = _Waker()
        self._thread = threading.Thread(target=self._serve, name=thread_name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._waker.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self._release()
        self._waker.close()

    @abc.abstractmethod
    def _serve(self) -> None:
        """Serve until `stop` sets `_stopping` and wakes the loop."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Free what the server holds, once its thread has ended."""


# --- the Unix-domain socket ------------------------------------------------------------------------------


class _Connection:
    def __init__(self, connection: socket.socket) -> None:
        self.socket = connection
        self.received = bytearray()
        self.waiting_since: float | None = None  # when the first byte of an unfinished frame arrived


class SocketChannelServer(_ChannelServer):
    """Serves length-prefixed JSON frames on a Unix-domain socket in a private temporary folder, from one
    thread: it reads every frame that arrived, hands them to the handler together and sends the answers."""

    def __init__(self, handler: Handler, secret: str) -> None:
        super().__init__(handler, secret, "hpt-channel-socket")
        self._folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))  # mode 0700: only its owner connects
        self.path = self._folder / SOCKET_NAME
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._waker.read_end, selectors.EVENT_READ)
        self._connections: dict[socket.socket, _Connection] = {}
        self._awaited: set[socket.socket] = set()  # answered a training report last round: its next one is coming

    @staticmethod
    def remove_left_behind(url: str) -> None:
        """Remove the socket (and its folder) that a controller killed before it could stop left at `url`; only
        a `hpt-channel-*` folder of the temporary folder is touched."""
        path = Path(url.removeprefix(SOCKET_SCHEME))
        if not url.startswith(SOCKET_SCHEME) or path.name != SOCKET_NAME or \
                not path.parent.name.startswith(FOLDER_PREFIX) or path.parent.parent != Path(tempfile.gettempdir()):
            return
        try:
            path.unlink(missing_ok=True)
            path.parent.rmdir()
        except OSError:
            pass

    @classmethod
    def possible(cls) -> bool:
        """Whether this machine can serve a socket in its temporary folder (Unix, a path short enough)."""
        return hasattr(socket, "AF_UNIX") and len(os.path.join(tempfile.gettempdir(), f"{FOLDER_PREFIX}xxxxxxxx",
                                                               SOCKET_NAME)) <= MAX_SOCKET_PATH

    @property
    def url(self) -> str:
        return f"{SOCKET_SCHEME}{self.path}"

    def _release(self) -> None:
        for connection in list(self._connections):
            self._close(connection)
        self._selector.close()
        self._listener.close()
        self.path.unlink(missing_ok=True)
        self._folder.rmdir()

    def _serve(self) -> None:
        last_sweep = time.monotonic()
        while not self._stopping.is_set():
            requests = self._gather(self._selector.select(timeout=SWEEP_SECONDS))
            if requests:
                gather_until = time.monotonic() + GATHER_SECONDS
                while self._awaited and (left := gather_until - time.monotonic()) > 0:
                    requests += self._gather(self._selector.select(timeout=left))
                self._awaited.clear()  # those that did not come are doing something else: not waited for again
                self._answer(requests)
            if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                last_sweep = time.monotonic()
                self._drop_stalled(last_sweep)

    def _gather(self, events: list[Any]) -> list[tuple[_Connection, Request]]:
        requests: list[tuple[_Connection, Request]] = []
        for key, _ in events:
            if key.fileobj is self._listener:
                self._accept()
            elif key.fileobj is self._waker.read_end:
                continue
            else:
                self._awaited.discard(key.fileobj)
                requests.extend(self._read(self._connections[key.fileobj]))
        return requests

    def _accept(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        if len(self._connections) >= MAX_CONNECTIONS:
            self.refusals.refused(f"refused a socket connection: {MAX_CONNECTIONS} are open already")
            connection.close()
            return
        connection.setblocking(False)
        self._connections[connection] = _Connection(connection)
        self._selector.register(connection, selectors.EVENT_READ)

    def _read(self, connection: _Connection) -> list[tuple[_Connection, Request]]:
        """The complete frames the connection has sent, as requests; a malformed one is refused and the
        connection closed."""
        try:
            data = connection.socket.recv(1 << 20)
        except BlockingIOError:
            return []
        except OSError as error:
            data, reason = b"", f"{type(error).__name__}: {error}"
        else:
            reason = "closed"
        if not data:
            if connection.received:
                self.refusals.refused(f"dropped a socket connection ({reason}) {len(connection.received)} bytes "
                                      "into a frame")
            self._close(connection.socket)
            return []
        connection.received += data
        requests = []
        while len(connection.received) >= FRAME_HEADER.size:
            (length,) = FRAME_HEADER.unpack_from(connection.received)
            if length > MAX_BODY_BYTES:
                self._refuse(connection, 413, f"a frame may carry at most {MAX_BODY_BYTES} bytes, but its header "
                                              f"says {length}")
                return requests
            if len(connection.received) < FRAME_HEADER.size + length:
                break
            frame = bytes(connection.received[FRAME_HEADER.size:FRAME_HEADER.size + length])
            del connection.received[:FRAME_HEADER.size + length]
            try:
                requests.append((connection, self._request(frame)))
            except ChannelRefused as refused:
                self._refuse(connection, refused.status, refused.message)
                return requests
        connection.waiting_since = (connection.waiting_since or time.monotonic()) if connection.received else None
        return requests

    def _request(self, frame: bytes) -> Request:
        try:
            message = json.loads(frame)
        except (ValueError, RecursionError) as error:
            raise ChannelRefused(400, f"a frame must be JSON: {str(error)[:200]}") from None
        if not isinstance(message, dict):
            raise ChannelRefused(400, f"a frame must be a JSON object, but got a {type(message).__name__}")
        sender = self._authenticator.sender(message.get("secret"))
        if sender is None:
            raise ChannelRefused(401, "unknown sender: the secret of one of this experiment's trial attempts "
                                      "is required")
        name, body = message.get("call"), message.get("body", {})
        if not isinstance(name, str):
            raise ChannelRefused(400, f"field 'call' must be the name of a call, but got {str(name)[:100]!r}")
        if not isinstance(body, dict):
            raise ChannelRefused(400, f"field 'body' must be a JSON object, but got a {type(body).__name__}")
        return Request(name, body, sender)

    def _answer(self, requests: list[tuple[_Connection, Request]]) -> None:
        try:
            answers = self._handler([request for _, request in requests])
        except Exception as error:
            answers = [error] * len(requests)
        for (connection, request), answer in zip(requests, answers):
            if connection.socket in self._connections:
                status, body = status_of(answer, request.name)
                if status != 200:
                    self.refusals.refused(f"refused {request.name[:100]!r} from trial {request.sender[0]} "
                                          f"with {status}: {body['error'][:300]}")
                self._send(connection, {"status": status, "reply": body} if status == 200 else
                           {"status": status, **body})
                if _reports_again(request) and connection.socket in self._connections:
                    self._awaited.add(connection.socket)

    def _refuse(self, connection: _Connection, status: int, message: str) -> None:
        """Answer a malformed frame and close its connection (what follows it cannot be trusted)."""
        self.refusals.refused(f"refused a socket frame with {status}: {message[:300]}")
        self._send(connection, {"status": status, "error": message})
        self._close(connection.socket)

    def _send(self, connection: _Connection, message: Mapping[str, Any]) -> None:
        frame = json.dumps(message, allow_nan=False).encode()
        try:
            connection.socket.sendall(FRAME_HEADER.pack(len(frame)) + frame)
        except OSError as error:  # gone, or not reading its replies: nothing more to tell it
            self.refusals.refused(f"dropped a socket connection: {type(error).__name__}: {str(error)[:200]}")
            self._close(connection.socket)

    def _drop_stalled(self, now: float) -> None:
        for connection in list(self._connections.values()):
            if connection.waiting_since is not None and now - connection.waiting_since > READ_TIMEOUT_SECONDS:
                self._refuse(connection, 408, f"the frame did not arrive within {READ_TIMEOUT_SECONDS:g} s")

    def _close(self, connection: socket.socket) -> None:
        self._awaited.discard(connection)
        if self._connections.pop(connection, None) is not None:
            self._selector.unregister(connection)
        connection.close()


# --- HTTP ---------------------------------------------------------------------------------------------------


class HttpChannelServer(_ChannelServer):
    """Serves the channel's requests as JSON POSTs to `/v1/<call>` with the secret as a Bearer token, a
    thread per connection."""

    def __init__(self, handler: Handler, secret: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(handler, secret, "hpt-channel")
        self._server = _QuietHTTPServer((host, port), self._request_handler_class(), self.refusals)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _release(self) -> None:
        self._server.server_close()

    def _serve(self) -> None:
        """Take each connection as it comes (then served by a thread of its own) until `stop` wakes the loop."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._waker.read_end, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if any(key.fileobj is self._server for key, _ in selector.select()):
                    self._server.handle_request()

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
                header = self.headers.get("Authorization") or ""
                sender = channel._authenticator.sender(header.removeprefix("Bearer ")) \
                    if header.startswith("Bearer ") else None
                if sender is None:
                    self._refuse(401, "unknown sender: the secret of one of this experiment's trial attempts "
                                      "is required")
                    return
                if not self.path.startswith(API_PREFIX):
                    self._refuse(404, f"no such endpoint: {self.path}")
                    return
                try:
                    body = self._read_body()
                except ChannelRefused as refused:
                    self._refuse(refused.status, refused.message)
                    return
                name = self.path.removeprefix(API_PREFIX)
                status, reply = status_of(_answer_one(channel._handler, Request(name, body, sender)), name)
                if status == 200:
                    self._reply(200, reply)
                else:
                    self._refuse(status, reply["error"])

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
