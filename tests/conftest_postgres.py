"""A real PostgreSQL server for the test session, and a fresh database URL per test on each backend.

Register with `pytest_plugins = ["tests.conftest_postgres"]` in tests/conftest.py. Fixtures:

- `postgres_url`: (session) a SQLAlchemy URL of a database on a PostgreSQL server started for this run
  on 127.0.0.1 in a temporary folder (as the `postgres` user when running as root) and stopped at the
  end; skips the test when no PostgreSQL server binaries are installed.
- `storage_url`: an empty database per test, once on SQLite (a file in tmp_path) and once on PostgreSQL
  (a new database on the shared server).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import psycopg

SERVER_USER = "postgres"
NOT_INSTALLED = "PostgreSQL server binaries are not installed (apt-get install postgresql)"


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where it listens and how to reach its databases."""

    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        with self._admin_connection() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connections still open to it."""
        with self._admin_connection() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin_connection(self) -> psycopg.Connection:
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True)


def find_server_binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: $HPT_TEST_PG_BIN, Debian's layout, or the PATH."""
    configured = os.environ.get("HPT_TEST_PG_BIN")
    candidates = [Path(configured)] if configured else []
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (folder for folder in debian.iterdir() if re.fullmatch(r"\d+", folder.name)),
            key=lambda folder: int(folder.name),
            reverse=True,
        )
        candidates += [folder / "bin" for folder in versions]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    if os.name == "posix" and os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--", *command]
    return command


def _run(command: list[str], cwd: Path) -> None:
    completed = subprocess.run(_as_server_user(command), cwd=cwd, capture_output=True, text=True, timeout=120)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {completed.returncode}:\n{completed.stdout}\n{completed.stderr}"
        )


def _start_server(binaries: Path, root: Path) -> PostgresServer:
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    if os.name == "posix" and os.geteuid() == 0:
        shutil.chown(root, user=SERVER_USER)
        shutil.chown(sockets, user=SERVER_USER)
    _run(
        [str(binaries / "initdb"), "-D", str(data), "-U", SERVER_USER, "--auth=trust", "-E", "UTF8", "--no-sync"], root
    )
    failures = []
    for _attempt in range(3):
        port = _free_port()
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        try:
            _run([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", options, "start"], root)
        except RuntimeError as error:
            failures.append(str(error))
            continue
        return PostgresServer(host="127.0.0.1", port=port, user=SERVER_USER)
    server_log = log.read_text(errors="replace") if log.exists() else "(no log)"
    raise RuntimeError("PostgreSQL did not start:\n" + "\n".join(failures) + f"\nserver log:\n{server_log}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session, stopped (and its folder removed) at the end."""
    binaries = find_server_binaries()
    if binaries is None:
        pytest.skip(NOT_INSTALLED)
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed (pip install 'psycopg[binary]')")
    # under /tmp, not $TMPDIR: the server runs as another user, who may not enter a private $TMPDIR (mktemp -d)
    root = Path(tempfile.mkdtemp(prefix="hpt-postgres-", dir="/tmp"))
    try:
        server = _start_server(binaries, root)
        try:
            yield server
        finally:
            _run([str(binaries / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"], root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """A SQLAlchemy URL (postgresql+psycopg) of a database on the session's PostgreSQL server."""
    return postgres_server.create_database("hpt_session")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a fresh, empty database: a SQLite file, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hpt.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex}"
    yield server.create_database(name)
    server.drop_database(name)
