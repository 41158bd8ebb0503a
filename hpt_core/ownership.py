"""Who runs an experiment: the lease a controller (or a short command such as `cancel`) holds in storage.

A holder is a host, a process id and a random token. The lease is taken by compare-and-set
(`Storage.acquire_lease`), renewed every `HEARTBEAT_SECONDS` by a thread while a controller runs, and
given up when it ends. A lease is live until it expires (`LEASE_SECONDS` after its last renewal), or
until its holder is seen to be gone: only on the holder's own host, where `os.kill(pid, 0)` can tell.
A holder on another host is never signalled; its lease is taken over once it has expired.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator

from hpt_core.storage import LeaseHeld, LeaseRecord, Storage

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
"""How long a lease lasts without a renewal: after a host dies, its experiments can be resumed this late."""
HEARTBEAT_SECONDS = 10.0
"""How often a running controller renews its lease."""


class ExperimentOwned(RuntimeError):
    """Another live holder has the experiment's lease; the message names it."""

    def __init__(self, lease: LeaseRecord) -> None:
        super().__init__(f"experiment {lease.experiment_id} is already run by {holder_description(lease)}; "
                         f"wait for it to end, or `hpt experiment cancel {lease.experiment_id}` it")
        self.lease = lease


class LeaseLost(RuntimeError):
    """The controller's lease was taken over by another holder (after it had expired)."""

    def __init__(self, experiment_id: int, lease: LeaseRecord | None) -> None:
        taker = "another controller" if lease is None else holder_description(lease)
        super().__init__(f"experiment {experiment_id}: this controller's lease expired and {taker} took the "
                         "experiment over; this controller stopped its trials and exits, leaving the experiment "
                         "to it")
        self.lease = lease


def holder_description(lease: LeaseRecord) -> str:
    """Who holds a lease, for messages: process, host, since when.

    >>> from datetime import datetime, UTC
    >>> since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    >>> holder_description(LeaseRecord(1, "t", "node-7", 4242, since, since, False))
    'process 4242 on host node-7 (since 2026-01-02 03:04:05 UTC)'
    """
    return f"process {lease.pid} on host {lease.host} (since {lease.acquired_at:%Y-%m-%d %H:%M:%S} UTC)"


def live_lease(storage: Storage, experiment_id: int) -> LeaseRecord | None:
    """The lease of the experiment's holder if it is live (not expired, holder not seen to be gone)."""
    lease = storage.lease(experiment_id)
    if lease is None or lease.expired or _holder_gone(lease):
        return None
    return lease


def _holder_gone(lease: LeaseRecord) -> bool:
    """Whether the holder is a process of this host that no longer exists (a kill -9, a crash)."""
    if lease.host != socket.gethostname():
        return False
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


class Lease:
    """The lease this process takes on one experiment: `acquire()`, `keep_renewed()`, `release()`."""

    def __init__(self, storage: Storage, experiment_id: int, seconds: float = LEASE_SECONDS,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.storage = storage
        self.experiment_id = experiment_id
        self.seconds = seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.token = secrets.token_hex(16)
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._renewal_tried_at = (time.monotonic(), time.time())

    def acquire(self) -> LeaseRecord:
        """Take the lease (from a holder that expired or is gone); ExperimentOwned if a live holder has it."""
        current = self.storage.lease(self.experiment_id)
        replacing = current.token if current is not None and _holder_gone(current) else None
        try:
            lease = self.storage.acquire_lease(self.experiment_id, token=self.token, host=socket.gethostname(),
                                               pid=os.getpid(), seconds=self.seconds, replacing=replacing)
        except LeaseHeld as held:
            raise ExperimentOwned(held.lease) from None
        self._renewal_tried_at = (time.monotonic(), time.time())
        return lease

    def keep_renewed(self) -> None:
        """Renew the lease every `heartbeat_seconds` in a thread, until `release()` or until it is lost."""
        self._heartbeat = threading.Thread(target=self._renew_until_stopped, name="hpt-lease-heartbeat",
                                           daemon=True)
        self._heartbeat.start()

    def check(self) -> None:
        """Raise LeaseLost once a renewal found that another holder took the lease.

        A lease whose renewal is overdue by more than a heartbeat (this process was stopped or its machine
        suspended, so the heartbeat thread could not run either) is renewed here first, before the caller acts.
        """
        monotonic, wall = self._renewal_tried_at
        overdue = max(time.monotonic() - monotonic, time.time() - wall) > 2 * self.heartbeat_seconds
        if overdue and not self._lost.is_set():
            self._renew()
        if self._lost.is_set():
            raise LeaseLost(self.experiment_id, self.storage.lease(self.experiment_id))

    def release(self) -> None:
        """Stop renewing and give the lease up (unless another holder has taken it meanwhile)."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self.storage.release_lease(self.experiment_id, self.token)

    @contextlib.contextmanager
    def held(self) -> Iterator[LeaseRecord]:
        """Hold the lease for a short action (`cancel` of an experiment no controller runs, `delete`)."""
        lease = self.acquire()
        try:
            yield lease
        finally:
            self.release()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds) and not self._lost.is_set():
            self._renew()

    def _renew(self) -> None:
        self._renewal_tried_at = (time.monotonic(), time.time())
        try:
            held = self.storage.renew_lease(self.experiment_id, self.token, self.seconds)
        except Exception as error:  # the database is unreachable for now: try again at the next beat
            logger.warning("experiment %d: could not renew the lease (%r); retrying", self.experiment_id, error)
            return
        if not held:
            self._lost.set()
