"""Group commit: the reports that many trials send at once are stored in one transaction.

A caller (a channel thread, or the socket channel with every report that arrived while it was busy) hands
its reports to `GroupCommit.store` and waits. The first waiting caller that finds no transaction running
becomes the writer: it takes every report waiting at that moment (its own among them) and stores them in
one transaction, so one commit (one fsync) serves many trials; the reports that arrive meanwhile go
together into the next. A caller returns once its reports' transaction has committed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from hpt_core.storage import Report, Storage


def per_group(flags: Sequence[bool], groups: Sequence[Sequence[Report]]) -> list[list[bool]]:
    """`flags`, one per report of the groups put end to end, cut back into one list per group."""
    cut, start = [], 0
    for group in groups:
        cut.append(list(flags[start:start + len(group)]))
        start += len(group)
    return cut


@dataclass
class _Waiting:
    reports: Sequence[Report]
    stored_now: list[bool] | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.stored_now is not None or self.error is not None

    def outcome(self) -> list[bool]:
        if self.error is not None:
            raise self.error
        return list(self.stored_now or [])


class GroupCommit:
    """Stores reports through `storage.add_reports`, many callers' reports per transaction."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._changed = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._writing = False

    def store(self, reports: Sequence[Report]) -> list[bool]:
        """Store each report once by its (trial, attempt, seq): for each, True if stored now, False if it was
        already (a retry)."""
        if not reports:
            return []
        entry = _Waiting(reports)
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
            stored = self._storage.add_reports([report for entry in batch for report in entry.reports])
        except Exception as error:  # each caller answers for its own reports
            for entry in batch:
                entry.error = error
        else:
            for entry, stored_now in zip(batch, per_group(stored, [entry.reports for entry in batch])):
                entry.stored_now = stored_now
