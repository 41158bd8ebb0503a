"""Leases: which controller runs an experiment, taken and renewed by compare-and-set.

A lease row names its holder (host, pid and a random token) and when it expires. It is taken only when
there is none, when the one there has expired, or when the caller names the token it replaces (a holder
it knows to be dead); it is renewed and given up only by the token that holds it. Each of these runs in
one write transaction under the experiment's row lock, so two controllers can never both hold it.

Expiry is judged by the database's clock on PostgreSQL (one clock for every host that shares it) and
by this machine's clock on SQLite (a file that the processes of one machine share).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, text, update

from hpt_core.storage import schema
from hpt_core.storage.errors import LeaseHeld
from hpt_core.storage.records import LeaseRecord

_LEASES = schema.leases


def read_lease(connection: Connection, experiment_id: int) -> LeaseRecord | None:
    """The experiment's lease, if anyone holds one (expired or not)."""
    row = connection.execute(select(_LEASES).where(_LEASES.c.experiment_id == experiment_id)).mappings().first()
    return None if row is None else _record(row, database_now(connection))


def acquire_lease(connection: Connection, experiment_id: int, *, token: str, host: str, pid: int,
                  seconds: float, replacing: str | None) -> LeaseRecord:
    """Take the lease for `token` (the caller holds the experiment's row lock); LeaseHeld if another
    holder's lease is live and is not the one `replacing` names."""
    current = read_lease(connection, experiment_id)
    if current is not None and not current.expired and current.token not in (token, replacing):
        raise LeaseHeld(current)
    now = database_now(connection)
    connection.execute(delete(_LEASES).where(_LEASES.c.experiment_id == experiment_id))
    values = {"experiment_id": experiment_id, "token": token, "host": host, "pid": pid, "acquired_at": now,
              "expires_at": now + timedelta(seconds=seconds)}
    connection.execute(insert(_LEASES).values(**values))
    return LeaseRecord(**values, expired=False)


def renew_lease(connection: Connection, experiment_id: int, token: str, seconds: float) -> bool:
    """Push the lease's expiry `seconds` ahead if `token` still holds it; False if it does not."""
    expires_at = database_now(connection) + timedelta(seconds=seconds)
    result = connection.execute(update(_LEASES).where(_LEASES.c.experiment_id == experiment_id,
                                                      _LEASES.c.token == token).values(expires_at=expires_at))
    return result.rowcount > 0


def release_lease(connection: Connection, experiment_id: int, token: str) -> None:
    """Give the lease up if `token` holds it (a lease someone else took over stays theirs)."""
    connection.execute(delete(_LEASES).where(_LEASES.c.experiment_id == experiment_id, _LEASES.c.token == token))


def database_now(connection: Connection) -> datetime:
    """Now, by the clock that judges expiry: PostgreSQL's, or this machine's for SQLite."""
    if connection.dialect.name == "postgresql":
        return connection.execute(text("SELECT clock_timestamp()")).scalar_one().astimezone(UTC)
    return datetime.now(UTC)


def _record(row: Any, now: datetime) -> LeaseRecord:
    lease = {column.name: row[column.name] for column in _LEASES.columns}
    return LeaseRecord(**lease, expired=lease["expires_at"] <= now)
