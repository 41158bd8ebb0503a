"""The executor's side of the fork server: start it, ask it for trials, learn how they ended."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hpt_core.executors.fork_server import python_script_of, third_party_imports

CONNECT_SECONDS = 120.0
SERVER_MAIN = (  # os._exit: a thread some preloaded module left behind must not keep the server alive
    "import os, sys; from hpt_core.executors.fork_server import serve; "
    "serve(sys.argv[1], sys.argv[3:], parent=int(sys.argv[2])); os._exit(0)"
)


class ForkedProcess:
    """A trial forked by the server: the executor's handle on it, like a `subprocess.Popen`."""

    def __init__(self, pid: int, server: ForkServer) -> None:
        self.pid = pid
        self._server = server

    def poll(self) -> int | None:
        return self._server.returncode(self.pid)


class ForkServer:
    """One fork server per experiment, started in the background; trials start cold until it is ready."""

    def __init__(self, directory: Path, script: Path, environment: dict[str, str]) -> None:
        self.socket_path = directory / "fork-server.sock"
        self.modules = third_party_imports(script)
        self.ready = False
        self.unusable_reason = ""
        self._returncodes: dict[int, int] = {}
        self._replies: list[dict[str, Any]] = []
        self._condition = threading.Condition()
        self._connection: socket.socket | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        with open(directory / "fork-server.log", "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-c", SERVER_MAIN, str(self.socket_path), str(os.getpid()), *self.modules],
                env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        threading.Thread(target=self._listen, name="hpt-fork-server", daemon=True).start()

    def launch(self, argv: list[str], cwd: Path, env: dict[str, str], log_path: str) -> ForkedProcess:
        request = {"launch": {"argv": argv, "cwd": str(cwd), "env": env, "log_path": log_path}}
        with self._condition:
            self._connection.sendall((json.dumps(request) + "\n").encode())
            while not self._replies and self.ready:
                self._condition.wait(timeout=1.0)
            if not self._replies:
                raise OSError(f"the fork server stopped: {self.unusable_reason}")
            return ForkedProcess(self._replies.pop(0)["pid"], self)

    def returncode(self, pid: int) -> int | None:
        with self._condition:
            return self._returncodes.get(pid)

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self.socket_path.unlink(missing_ok=True)

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
        with self._condition:
            self.ready = False
            self._condition.notify_all()

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + CONNECT_SECONDS
        while True:
            try:
                connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                connection.connect(str(self.socket_path))
                return connection
            except OSError:
                connection.close()
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise OSError("the fork server did not come up") from None
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
