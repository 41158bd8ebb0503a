"""Run the dashboard: `serve` in the foreground (`hpt dashboard`), `DashboardServer` in a background thread.

On a loopback address the dashboard answers only requests addressed to a loopback name (a guard
against DNS rebinding); any other address needs a token, which every request then carries (see
`security.TokenGate`).

>>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
(True, True, True, False)
>>> dashboard_url("::1", 8080)
'http://[::1]:8080/'
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from hpt_core.dashboard.registry import forget_running, record_running
from hpt_core.errors import ConfigError, Problem

if TYPE_CHECKING:
    from fastapi import FastAPI

TOKEN_VARIABLE = "HPT_DASHBOARD_TOKEN"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
_OPTIONS = "the dashboard's options"


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, port: int, token: str | None) -> None:
    """Refuse a port that does not exist, or to listen beyond this machine without a token (ConfigError)."""
    if not 0 <= port <= 65535:
        raise ConfigError([Problem("--port", "must be a port number from 0 to 65535", port)], _OPTIONS)
    if not is_loopback(host) and not token:
        raise ConfigError([Problem(
            "--host", "listening on an address other than loopback (127.0.0.1, ::1, localhost) needs a token: "
            f"--token TOKEN or ${TOKEN_VARIABLE}", host)], _OPTIONS)


def dashboard_url(host: str, port: int) -> str:
    """The address of a dashboard listening on `host`:`port`."""
    return f"http://{_host_name(host)}:{port}/"


def _host_name(host: str) -> str:
    """`host` as it appears in a URL or a Host header (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host


def _app(storage_url: str, host: str, port: int, token: str | None) -> FastAPI:
    check_binding(host, port, token)
    try:
        from hpt_core.dashboard.app import create_app
    except ImportError as error:
        raise ConfigError([Problem("hpt dashboard", f"needs the `dashboard` extra ({error.name} is missing): "
                                   "pip install -e '.[dashboard]'")], _OPTIONS) from error

    if is_loopback(host):
        return create_app(storage_url, token, allowed_hosts=[*LOOPBACK_HOSTS, _host_name(host)])
    return create_app(storage_url, token, token_for_reads=True)


def serve(storage_url: str, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          announce: Callable[[str], None] = print) -> None:
    """Serve the dashboard of `storage_url` until interrupted; its address is recorded for `hpt experiment create`."""
    app = _app(storage_url, host, port, token)
    import uvicorn

    url = dashboard_url(host, port)
    record_running(url, storage_url)
    try:
        announce(url)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        forget_running()


class DashboardServer:
    """The dashboard served from a background thread of this process (for tests and notebooks).

    >>> import tempfile
    >>> with DashboardServer(f"sqlite:///{tempfile.mkdtemp()}/hpt.db", port=0) as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self, storage_url: str, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self.app = _app(storage_url, host, port, token)
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, name="hpt-dashboard", daemon=True)
        self.host = host
        self.url = ""

    def start(self, timeout: float = 30.0) -> DashboardServer:
        """Start serving and wait until the socket listens."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start on {self.host}")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = dashboard_url(self.host, port)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
