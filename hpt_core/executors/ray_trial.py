"""The part of the Ray executor that runs on a node: one attempt of a trial, as a Ray actor.

The actor's working directory is the model directory as Ray's runtime environment unpacked it on
this node; each trial gets a link farm of it (as with the local executor) so that concurrent
trials never collide on the files they write. The entrypoint runs with the shell as its own
process group; its output is buffered for the controller, which fetches it with `output`. A small
watchdog process kills that group when the actor's process dies (Linux: `PR_SET_PDEATHSIG`), so a
killed Ray worker never leaves the trial's processes running unseen.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping

from hpt_core.executors.process_group import group_alive, shell_returncode, signal_group
from hpt_core.executors.resources import thread_limits
from hpt_core.executors.workdir import make_link_farm

_PR_SET_PDEATHSIG = 1
_READ_BYTES = 65536
#: Run as `python -c WATCHDOG PGID`: on SIGTERM (sent when its parent dies) it kills process group PGID.
WATCHDOG = ("import os, signal, sys\n"
            "signal.signal(signal.SIGTERM, lambda *_: (os.killpg(int(sys.argv[1]), signal.SIGKILL), os._exit(0)))\n"
            "signal.pause()")


class TrialProcess:
    """Runs `command` for one attempt of a trial on this node (create it with `ray.remote(...)`).

    `workdir_key` names the trial's working directory among those of other experiments on the node.
    """

    def __init__(self, command: str, env: Mapping[str, str], workdir_key: str, threads: int, attempt: int) -> None:
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()
        self.workdir = Path.cwd().parent / "hpt-trials" / workdir_key / "workdir"
        if not self.workdir.exists():
            self.workdir.parent.mkdir(parents=True, exist_ok=True)
            make_link_farm(Path.cwd(), self.workdir)
        self._environment = {
            **os.environ,
            **thread_limits(threads),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
            "HPT_RAY_NODE_ID": self.node_id,
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", os.defpath)]),
        }
        self._command = command
        where = f"=== attempt {attempt} runs on Ray node {self.node_id} in {self.workdir} ===\n"
        self._output = bytearray(where.encode())
        self._returncode: int | None = None
        self._pgid: int | None = None
        self._changed = threading.Condition()
        self._started = threading.Event()
        threading.Thread(target=self._run, name="hpt-trial-process", daemon=True).start()
        self._started.wait()

    def output(self, wait_seconds: float) -> tuple[bytes, int | None]:
        """Output not fetched before (waiting up to `wait_seconds` for some), and the exit status once
        every process of the attempt has ended (None until then)."""
        with self._changed:
            self._changed.wait_for(lambda: self._output or self._returncode is not None, timeout=wait_seconds)
            chunk, self._output = bytes(self._output), bytearray()
            return chunk, self._returncode

    def signal(self, signum: int) -> None:
        """Send `signum` to the attempt's process group (nothing if it has ended)."""
        if self._pgid is not None and self._returncode is None:
            signal_group(self._pgid, signum)

    def _run(self) -> None:
        """Start the command and its watchdog, and watch them; this thread lives as long as the command."""
        try:
            process = subprocess.Popen(
                self._command, shell=True, cwd=self.workdir, env=self._environment, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )
            self._pgid = process.pid
            watchdog = subprocess.Popen([sys.executable, "-S", "-c", WATCHDOG, str(process.pid)],
                                        stdin=subprocess.DEVNULL, preexec_fn=_term_when_parent_dies)
        except OSError as error:
            self._append(f"could not start {self._command!r}: {error}\n".encode())
            self._end(127)
            return
        finally:
            self._started.set()
        while chunk := os.read(process.stdout.fileno(), _READ_BYTES):
            self._append(chunk)
        returncode = shell_returncode(process.wait())
        signal_group(process.pid, signal.SIGKILL)  # processes the command left behind end with it
        while group_alive(process.pid):
            time.sleep(0.02)
        watchdog.kill()
        watchdog.wait()
        self._end(returncode)

    def _append(self, chunk: bytes) -> None:
        with self._changed:
            self._output += chunk
            self._changed.notify_all()

    def _end(self, returncode: int) -> None:
        with self._changed:
            self._returncode = returncode
            self._changed.notify_all()


def _term_when_parent_dies() -> None:
    """In the watchdog before exec: SIGTERM when the thread that started it (the actor's watcher) dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
