"""POSIX process groups: a trial's command and everything it starts, signalled and watched as one.

Processes are read through `psutil` (Linux and macOS alike), never by parsing `/proc`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil

_ENDED = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
_STOPPED = (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)


def signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to every process in group `pgid`; a group that has already ended is fine."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether group `pgid` has a process that has not ended (zombies, ended but not reaped, do not count).

    A zombie whose parent has gone stays a zombie for good where PID 1 does not reap orphans
    (many containers), so it must not keep a trial "running".
    """
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(_group_of(process) == pgid and process.info["status"] not in _ENDED
               for process in psutil.process_iter(["status"]))


def process_start_time(pid: int) -> float | None:
    """When the process started (seconds since the epoch), to tell it from a later one with its id."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def groups_working_in(directory: Path) -> set[int]:
    """The process groups with a live process whose working directory is `directory` or below it."""
    groups = set()
    for process in psutil.process_iter(["status", "cwd"]):
        cwd = process.info["cwd"]  # None where it cannot be read (another user's process)
        if cwd and process.info["status"] not in _ENDED and Path(cwd).is_relative_to(directory):
            group = _group_of(process)
            if group is not None:
                groups.add(group)
    return groups


def shell_returncode(returncode: int) -> int:
    """A shell's exit status with "killed by signal N" (128 + N, as shells report it) made -N, as subprocess does.

    >>> shell_returncode(137), shell_returncode(-15), shell_returncode(1)
    (-9, -15, 1)
    """
    if 128 < returncode < 128 + signal.NSIG:
        return 128 - returncode
    return returncode


def process_stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP, or traced); False when it has gone or cannot be read."""
    try:
        return psutil.Process(pid).status() in _STOPPED
    except psutil.Error:
        return False


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
