"""The executor's side of the fork server: start it, ask it for trials, learn how they ended.

The server may die at any time. Its trials carry on (each is its own session) and are then watched
through their process groups; one that has ended is given the exit status it recorded itself, or
`UNKNOWN_EXIT_STATUS` (a crash) when it recorded none. Launches after that fail, and start cold.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hpt_core.executors.fork_server import python_script_of, third_party_imports
from hpt_core.executors.process_group import group_alive

CONNECT_SECONDS = 120.0
UNKNOWN_EXIT_STATUS = 255
"""A warm trial that ended after its server died without recording its exit status (killed by a signal, or
died before it could): a crash, so the controller restarts it like any other."""
SERVER_MAIN = (  # os._exit: a thread some preloaded module left behind must not keep the server alive
    "import os, sys; from hpt_core.executors.fork_server import serve; "
    "serve(sys.argv[1], sys.argv[3:], parent=int(sys.argv[2])); os._exit(0)"
)


class ForkedProcess:
    """A trial forked by the server: the executor's handle on it, like a `subprocess.Popen`."""

    def __init__(self, pid: int, server: ForkServer, log_path: str) -> None:
        self.pid = pid
        self.log_path = log_path
        self._server = server

    def poll(self) -> int | None:
        return self._server.returncode(self)


class ForkServer:
    """One fork server per experiment, started in the background; trials start cold until it is ready."""

    def __init__(self, directory: Path, script: Path, environment: dict[str, str]) -> None:
        # a short private folder: a Unix socket's path is limited to ~100 bytes, and experiment folders
        # (named by a uuid, under any $HPT_HOME) can be longer
        self._socket_dir = Path(tempfile.mkdtemp(prefix="hpt-fork-"))
        self.socket_path = self._socket_dir / "server.sock"
        self.log_path = directory / "fork-server.log"
        self.exit_status_dir = directory / "fork-server-exits"
        self.modules = third_party_imports(script)
        self.ready = False
        self.unusable_reason = ""
        self._returncodes: dict[int, int] = {}
        self._replies: list[dict[str, Any]] = []
        self._condition = threading.Condition()
        self._connection: socket.socket | None = None
        self._listening = True
        self._stopping = False
        self._notice = ""
        self.exit_status_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-c", SERVER_MAIN, str(self.socket_path), str(os.getpid()), *self.modules],
                env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        threading.Thread(target=self._listen, name="hpt-fork-server", daemon=True).start()

    def launch(self, argv: list[str], cwd: Path, env: dict[str, str], log_path: str) -> ForkedProcess:
        """Fork the trial; raises OSError when the server is gone or dies before it announced the trial
        (the trial then never runs, so the caller can start it cold)."""
        request = {"launch": {"argv": argv, "cwd": str(cwd), "env": env, "log_path": log_path,
                              "exit_status_dir": str(self.exit_status_dir)}}
        with self._condition:
            self._connection.sendall((json.dumps(request) + "\n").encode())
            while not self._replies and self._listening:
                self._condition.wait(timeout=1.0)
            if not self._replies:
                raise OSError(f"the fork server stopped: {self.unusable_reason}")
            return ForkedProcess(self._replies.pop(0)["pid"], self, log_path)

    def returncode(self, process: ForkedProcess) -> int | None:
        """The trial's exit status once it has ended: as the server announced it or, once the server is gone
        and the trial's process group has ended, as the trial recorded it (else `UNKNOWN_EXIT_STATUS`)."""
        with self._condition:
            if process.pid in self._returncodes or self._listening:
                return self._returncodes.get(process.pid)
        if group_alive(process.pid):
            return None
        returncode = self._recorded_exit_status(process)
        with self._condition:
            self._returncodes[process.pid] = returncode
        return returncode

    def take_notice(self) -> str:
        """The line for the user saying that trials start cold from now on, and why; returned once ("" before)."""
        with self._condition:
            notice, self._notice = self._notice, ""
            return notice

    def stop(self) -> None:
        self._stopping = True
        if self._connection is not None:
            self._connection.close()
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self._socket_dir, ignore_errors=True)

    def _listen(self) -> None:
        try:
            connection = self._connect()
            stream = connection.makefile("r")
            hello = json.loads(stream.readline() or "{}")
            with self._condition:
                self._connection = connection
                self.ready = bool(hello.get("ready"))
                self.unusable_reason = hello.get("reason", "the fork server did not start")
            for line in stream:
                self._receive(json.loads(line))
        except (OSError, ValueError) as error:
            self.unusable_reason = f"the fork server failed: {error}"
        if not self._stopping:
            self._say_cold()
        with self._condition:
            self.ready = False
            self._listening = False
            self._condition.notify_all()

    def _say_cold(self) -> None:
        """Say, in the server's log and once to the user, that trials start cold from now on, and why."""
        if self.ready:
            try:
                status = self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                status = None
            self.unusable_reason = f"the fork server is gone (exit status {status}); the trials it started " \
                                   "are watched through their process groups"
        notice = f"warm starts: {self.unusable_reason}; trials start cold from now on"
        with open(self.log_path, "a") as log:
            log.write(f"hpt: {notice}\n")
        self._notice = notice

    def _recorded_exit_status(self, process: ForkedProcess) -> int:
        try:
            return int((self.exit_status_dir / str(process.pid)).read_text())
        except (OSError, ValueError):
            with open(process.log_path, "a") as log:
                log.write(f"hpt: the fork server is gone and this attempt ended without recording its exit "
                          f"status; it counts as a crash (exit status {UNKNOWN_EXIT_STATUS})\n")
            return UNKNOWN_EXIT_STATUS

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + CONNECT_SECONDS
        while True:
            try:
                connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                connection.connect(str(self.socket_path))
                return connection
            except OSError:
                connection.close()
                if self._process.poll() is not None:
                    raise OSError(f"it ended (exit status {self._process.returncode}) before it was ready") from None
                if time.monotonic() > deadline:
                    raise OSError(f"it was not ready within {CONNECT_SECONDS:.0f} s") from None
                time.sleep(0.05)

    def _receive(self, message: dict[str, Any]) -> None:
        with self._condition:
            if "exit" in message:
                self._returncodes[message["exit"]] = message["returncode"]
            else:
                self._replies.append(message)
            self._condition.notify_all()


def warm_start_wanted(command: str, workdir_model: Path) -> list[str] | None:
    """The script and arguments to run warm, or None when the command must run in a fresh shell."""
    if os.environ.get("HPT_WARM_START", "1") == "0":
        return None
    argv = python_script_of(command)
    if argv is None or not (workdir_model / argv[0]).is_file():
        return None
    return argv
