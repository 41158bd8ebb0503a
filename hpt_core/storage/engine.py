"""One SQLAlchemy Engine per database URL, tuned so that concurrent writers queue instead of failing.

SQLite: WAL journal, `synchronous=FULL`, foreign keys on and a 30 s busy timeout on every connection;
pysqlite's own transaction handling is switched off so that write transactions start with
`BEGIN IMMEDIATE` (they take the write lock up front and wait for it, instead of failing when a read
lock cannot be upgraded). PostgreSQL: transactions in READ COMMITTED; writers that must serialise lock
the rows they depend on.
"""

from __future__ import annotations

import functools
import json
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from hpt_core.private_files import create_private

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "hpt_write"


def create_storage_engine(url: str) -> Engine:
    """An Engine for `url`; for SQLite files, the parent folder is created if missing."""
    parsed = make_url(url)
    serializer = functools.partial(json.dumps, allow_nan=False)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, json_serializer=serializer, pool_pre_ping=True)
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        raise ValueError(
            f"storage URL {url!r} names an in-memory SQLite database, which each connection sees empty; "
            "give a file, e.g. sqlite:////path/to/hpt.db"
        )
    if not parsed.query.get("uri"):
        path = Path(database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private(path)  # SQLite gives its -wal and -shm files the database file's mode
    engine = create_engine(
        url,
        json_serializer=serializer,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that takes the write lock at once (SQLite) and commits on success."""
    with engine.connect() as connection:
        write_transaction_options(connection)
        with connection.begin():
            yield connection


def write_transaction_options(connection: Connection) -> None:
    """Make the transactions `connection` begins write transactions (SQLite: `BEGIN IMMEDIATE`)."""
    connection.execution_options(**{_WRITE_OPTION: True})


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a read transaction (one consistent snapshot), rolled back at the end."""
    with engine.connect() as connection:
        with connection.begin():
            yield connection


def _configure_sqlite_connection(dbapi_connection: Any, _connection_record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode = WAL`, retried while the database is locked.

    While several processes create one new database, SQLite can refuse the switch with "database
    is locked" at once, without waiting out the busy timeout; the switch is retried until it has.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))


def _begin_sqlite_transaction(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
