"""POSIX process groups: a trial's command and everything it starts, signalled and watched as one."""

from __future__ import annotations

import os
import signal
from pathlib import Path

_PROC = Path("/proc")


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
    if not (_PROC / "self" / "stat").exists():
        return True
    with os.scandir(_PROC) as entries:
        return any(_live_member_of(entry.name, pgid) for entry in entries if entry.name.isdigit())


def _live_member_of(pid: str, pgid: int) -> bool:
    try:
        stat = (_PROC / pid / "stat").read_text()
    except OSError:
        return False
    state, _parent, group = stat.rpartition(")")[2].split()[:3]
    return int(group) == pgid and state not in ("Z", "X")


def process_start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot, from /proc), to tell it from a later one with its id."""
    try:
        return int((_PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def groups_working_in(directory: Path) -> set[int]:
    """The process groups with a live process whose working directory is `directory` or below it."""
    groups = set()
    with os.scandir(_PROC) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                cwd = Path(os.readlink(_PROC / entry.name / "cwd"))
                state, _parent, group = (_PROC / entry.name / "stat").read_text().rpartition(")")[2].split()[:3]
            except OSError:
                continue
            if state not in ("Z", "X") and cwd.is_relative_to(directory):
                groups.add(int(group))
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
    """Whether the process is stopped (SIGSTOP, or traced), from /proc; False when it cannot be read."""
    try:
        return (_PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False
