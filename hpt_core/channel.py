"""The link between trials and their controller, as a trial sees it: requests authenticated by a secret per
trial attempt, each answered once the controller has stored what it carried.

Two transports carry the same requests under the same rules (`hpt_core.channel_server` serves both):
a Unix-domain socket (`unix:///path`) for trials on the controller's machine, with length-prefixed JSON
frames, and JSON over HTTP (`http://host:port`) for trials elsewhere (the Ray executor binds it to an
address the nodes can reach). A request returns only after the controller has stored what it carried, so
a report that has returned is durable; every request is safe to send again (reports carry their attempt's
sequence number, checkpoints their id), so the client retries until it gets an answer, and finds a
controller that moved (a resumed experiment) through the channel file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Protocol, TextIO

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest body (HTTP) or frame (socket) a request may carry; a larger one is refused with 413."""
CHECKPOINT_METADATA_FILE = "hpt_checkpoint.json"
"""Written last into a checkpoint directory: a directory holding it is a complete checkpoint."""
API_PREFIX = "/v1/"
SOCKET_SCHEME = "unix://"
FRAME_HEADER = struct.Struct(">I")
"""A socket frame: its length in 4 bytes (big-endian), then that many bytes of JSON. A request frame is
`{"call": name, "secret": attempt secret, "body": {...}}`, its reply `{"status": 200, "reply": {...}}` or
`{"status": 4xx, "error": message}`."""
START_VARIABLE, START_VARIABLE_BYTES = "HPT_START", 32 * 1024
"""The controller's answer to a trial's "start" call (JSON), given in the trial's environment at launch when it
is at most this long (an environment variable is limited to 128 KiB); a trial without it asks."""
RETRY_PAUSE_SECONDS = 0.2
"""The pause between two tries of a request the controller did not answer (doubling up to 1 s)."""
WAITING_NOTICE_SECONDS = 1.0
"""A request unanswered this long writes one line to the trial's output, and another once it is answered."""

Sender = tuple[int, int]
"""Who sent a request: (trial id, attempt), as its secret proves."""


def attempt_secret(experiment_secret: str, trial_id: int, attempt: int) -> str:
    """The secret of one attempt of one trial: it names them and is signed with the experiment's secret, which
    no trial holds, so a trial can speak only for itself.

    >>> attempt_secret("s", 3, 1).startswith("3.1.")
    True
    """
    return f"{trial_id}.{attempt}.{signature(experiment_secret, trial_id, attempt)}"


def signature(experiment_secret: str, trial_id: int, attempt: int) -> str:
    return hmac.new(experiment_secret.encode(), f"{trial_id}.{attempt}".encode(), hashlib.sha256).hexdigest()


class ChannelRefused(Exception):
    """The controller refused a request; `status` is the HTTP status (401 unknown sender, 409 stale attempt)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class ControllerUnreachable(ConnectionError):
    """The controller did not answer within the retry window."""


class Link(Protocol):
    """One connection to the controller: `exchange` sends a request and returns its reply, raising ChannelRefused
    for a refusal and OSError (ConnectionError) when the connection fails."""

    url: str

    def exchange(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class ChannelClient:
    """What a trial uses to talk to its controller: one persistent connection per thread; a request that is
    not answered is sent again (every request is safe to repeat) until `retry_seconds` have passed, and a
    controller that moved is found again through `channel_file` (JSON `{"url": ..., "local_url": ...}`,
    rewritten by each controller of the experiment). Waits longer than a second are noted in `log` (the
    trial's output)."""

    def __init__(self, url: str, secret: str, *, channel_file: str | Path | None = None, timeout: float = 60.0,
                 log: TextIO | None = None) -> None:
        self.url = url.rstrip("/")
        self._secret = secret
        self._channel_file = Path(channel_file) if channel_file else None
        self.timeout = timeout
        self._log = log
        self._links = threading.local()

    def call(self, name: str, body: Mapping[str, Any], retry_seconds: float = 10.0) -> dict[str, Any]:
        """Send a request; its reply. ChannelRefused when the controller refuses it, ControllerUnreachable when
        no controller answered for `retry_seconds` (math.inf: wait as long as it takes)."""
        started = time.monotonic()
        pause, noted = RETRY_PAUSE_SECONDS, False
        while True:
            try:
                reply = self._link().exchange(name, body)
            except OSError as error:
                self._drop_link()
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

    def _link(self) -> Link:
        link: Link | None = getattr(self._links, "current", None)
        if link is None or link.url != self.url:
            if self.url.startswith(SOCKET_SCHEME):
                link = _SocketLink(self.url, self._secret, self.timeout)
            else:
                from hpt_core.channel_http_client import HttpLink  # only trials on other machines speak HTTP

                link = HttpLink(self.url, self._secret, self.timeout)
            self._links.current = link
        return link

    def _drop_link(self) -> None:
        link = getattr(self._links, "current", None)
        if link is not None:
            link.close()
            self._links.current = None

    def _rediscover(self) -> None:
        """Follow the experiment's channel to the address its current controller wrote (of the same transport)."""
        if self._channel_file is None:
            return
        try:
            addresses = json.loads(self._channel_file.read_text())
            local = self.url.startswith(SOCKET_SCHEME) and addresses.get("local_url")
            url = str(local or addresses["url"]).rstrip("/")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return
        if url != self.url:
            self._note(f"the controller moved: now at {url}")
            self.url = url

    def _note(self, message: str) -> None:
        print(f"hpt: {message}", file=self._log or sys.stderr, flush=True)


class _SocketLink:
    """One connection to the controller's Unix-domain socket."""

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        self.url = url
        self._secret = secret
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout)
        try:
            self._socket.connect(url.removeprefix(SOCKET_SCHEME))
        except OSError:
            self._socket.close()
            raise

    def exchange(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        frame = json.dumps({"call": name, "secret": self._secret, "body": body}, allow_nan=True).encode()
        self._socket.sendall(FRAME_HEADER.pack(len(frame)) + frame)
        (length,) = FRAME_HEADER.unpack(self._receive(FRAME_HEADER.size))
        if length > MAX_BODY_BYTES:
            raise ConnectionError(f"the controller's reply claims {length} bytes, more than {MAX_BODY_BYTES}")
        try:
            answer = json.loads(self._receive(length))
            status = answer["status"]
        except (ValueError, KeyError, TypeError) as error:
            raise ConnectionError(f"the controller's reply is not a channel frame: {error}") from None
        if status != 200:
            raise ChannelRefused(status, str(answer.get("error", "refused")))
        return answer["reply"]

    def _receive(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self._socket.recv(size - len(data))
            if not chunk:
                raise ConnectionResetError("the controller closed the connection")
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self._socket.close()


def _describe(body: Mapping[str, Any]) -> str:
    if "reports" in body and isinstance(body["reports"], list) and body["reports"]:
        return f"(seq {body['reports'][0].get('seq')}..{body['reports'][-1].get('seq')})"
    return f"(seq {body['seq']})" if "seq" in body else ""


