"""The transactions `Storage` methods run in, and batches: one thread's writes made one commit.

Each `Storage` method is a transaction of its own, unless the calling thread has a batch open
(`Storage.batch()`): then its writes join the batch's transaction, each in a savepoint (a method that
fails undoes its own writes only, as its own transaction would), its reads see the batch's writes, and
everything is committed once, when the batch ends or `Batch.commit()` is called. A batch commits what
succeeded even when the code inside it raises, so a batch changes when writes become durable, never
which: a process killed inside a batch loses the batch's writes together, as if killed before them.

The batch's transaction starts at its first write (SQLite's write lock is taken then, not before), so a
batch that only reads holds no lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from hpt_core.storage.engine import read_transaction, write_transaction, write_transaction_options

_SAVEPOINT = "hpt_write"


@dataclass
class Batch:
    """The writes of one thread, committed together."""

    engine: Engine
    connection: Connection | None = None
    transaction: Any = field(default=None)

    def commit(self) -> None:
        """Commit the writes so far (durable once this returns); later writes start a new transaction."""
        if self.transaction is not None:
            transaction, self.transaction = self.transaction, None
            transaction.commit()

    def writing(self) -> Connection:
        """The batch's connection, in a write transaction."""
        if self.connection is None:
            self.connection = self.engine.connect()
            write_transaction_options(self.connection)
        if self.transaction is None:
            self.transaction = self.connection.begin()
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class Transactions:
    """Read and write transactions on `engine`, joining the calling thread's batch when it has one."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Make this thread's writes one transaction until the block ends; a batch inside a batch is part of it."""
        outer = getattr(self._local, "batch", None)
        if outer is not None:
            yield outer
            return
        batch = self._local.batch = Batch(self.engine)
        try:
            yield batch
            batch.commit()
        except BaseException:
            batch.commit()  # what succeeded before the failure stays, as it would without the batch
            raise
        finally:
            self._local.batch = None
            batch.close()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction: the batch's (in a savepoint), or one committed at the end."""
        batch = getattr(self._local, "batch", None)
        if batch is None:
            with write_transaction(self.engine) as connection:
                yield connection
            return
        connection = batch.writing()
        connection.exec_driver_sql(f"SAVEPOINT {_SAVEPOINT}")  # plain SQL: a tenth of SQLAlchemy's begin_nested()
        try:
            yield connection
        except BaseException:
            connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            connection.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            raise
        connection.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in one read transaction: the batch's when it has written (so its writes are seen)."""
        batch = getattr(self._local, "batch", None)
        if batch is None or batch.transaction is None:
            with read_transaction(self.engine) as connection:
                yield connection
            return
        yield batch.connection
