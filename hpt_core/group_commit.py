"""Group commit: the reports that many trials send at once are stored in one transaction.

Each channel thread hands its report to `GroupCommit.store` and waits. The first waiting thread that finds
no transaction running becomes the writer: it takes every report waiting at that moment (its own among
them) and stores them in one transaction, so one commit (one fsync) serves many trials; the reports that
arrive meanwhile go together into the next. A report's call returns once its transaction has committed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from hpt_core.storage import Report, Storage


@dataclass
class _Waiting:
    report: Report
    stored_now: bool | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.stored_now is not None or self.error is not None

    def outcome(self) -> bool:
        if self.error is not None:
            raise self.error
        return bool(self.stored_now)


class GroupCommit:
    """Stores reports through `storage.add_reports`, many callers' reports per transaction."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._changed = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._writing = False

    def store(self, report: Report) -> bool:
        """Store `report` once by its (trial, attempt, seq); True if stored now, False if it was already."""
        entry = _Waiting(report)
        with self._changed:
            self._waiting.append(entry)
            while self._writing and not entry.done:
                self._changed.wait()
            if entry.done:
                return entry.outcome()
            batch, self._waiting, self._writing = self._waiting, [], True
        try:
            self._write(batch)
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()
        return entry.outcome()

    def _write(self, batch: Sequence[_Waiting]) -> None:
        try:
            stored = self._storage.add_reports([entry.report for entry in batch])
        except Exception as error:  # each caller answers for its own report
            for entry in batch:
                entry.error = error
        else:
            for entry, stored_now in zip(batch, stored):
                entry.stored_now = stored_now
