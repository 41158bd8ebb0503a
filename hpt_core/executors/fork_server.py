"""Warm trial starts: a server process that has already imported the trial script's libraries forks one
child per trial, so a trial that imports PyTorch Lightning or TensorFlow does not pay those seconds each
time ASHA starts it again.

The server imports the third-party packages the entrypoint script imports at its top level (read with
`ast`; the script's own modules are not imported ahead, so edits to them are seen). After that, forking
is only safe while the server runs a single thread: if an import started threads (some frameworks do),
the server says so and every trial starts as a fresh process instead. Each child is its own session
and process group, with its own working directory, environment, output file and exit status; a
crash or memory growth in one trial touches neither the server nor another trial.

Protocol (JSON lines over a Unix socket): the server first sends `{"ready": bool, "reason": str}`;
then each `{"launch": {...}}` request is answered with `{"pid": N}`, and every child that ends is
announced with `{"exit": N, "returncode": R}` (negative R: killed by that signal). A child runs its
trial only once its pid has been sent, so a server that dies mid-launch leaves no trial the executor
does not know of. A trial that ends on its own also writes its exit status to
`<launch's exit_status_dir>/<pid>`, for when the server is gone and cannot announce it.
"""

from __future__ import annotations

import ast
import atexit
import importlib
import importlib.util
import json
import os
import runpy
import selectors
import shlex
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

PYTHON_NAMES = ("python", "python3", f"python3.{sys.version_info.minor}")


def python_script_of(command: str, python: str = sys.executable) -> list[str] | None:
    """`[script, *args]` when `command` runs a Python script plainly (`python train.py --x 1`), else None."""
    if any(character in command for character in "|&;<>()$`*?~\\\n'\""):
        return None
    parts = shlex.split(command)
    if len(parts) < 2 or not parts[1].endswith(".py"):
        return None
    if parts[0] not in PYTHON_NAMES and os.path.realpath(parts[0]) != os.path.realpath(python):
        return None
    return parts[1:]


def third_party_imports(script: Path) -> list[str]:
    """Top-level packages a script imports at module level, that are installed and not beside the script."""
    try:
        tree = ast.parse(script.read_text(), str(script))
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module.split(".")[0])
    local = {path.stem for path in script.parent.iterdir()} if script.parent.is_dir() else set()
    standard = sys.stdlib_module_names
    return [name for name in dict.fromkeys(names)
            if name not in local and name not in standard and importlib.util.find_spec(name) is not None]


def serve(socket_path: str, modules: list[str], parent: int) -> None:
    """The server's main loop: preload `modules`, then fork a trial for each request on `socket_path`; it ends
    once `parent` (the executor's process, given by it: it may die before the server could ask) is not its parent."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # a module that fails to import is the trial's business, not the server's
            print(f"hpt fork server: could not preload {name}: {error}", file=sys.stderr, flush=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(1)
    listener.settimeout(1.0)
    while True:
        try:
            connection, _ = listener.accept()
            break
        except TimeoutError:
            if os.getppid() != parent:
                return  # the executor's process is gone before it connected
    connection.settimeout(None)
    stream = connection.makefile("rw", buffering=1)
    reason = _unsafe_to_fork()
    _send(stream, {"ready": reason is None, "reason": reason or ""})
    if reason is not None:
        return
    children: set[int] = set()
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    selector = selectors.DefaultSelector()
    selector.register(connection, selectors.EVENT_READ)
    selector.register(wakeup_read, selectors.EVENT_READ)
    while os.getppid() == parent:
        for key, _ in selector.select(timeout=1.0):
            if key.fileobj is wakeup_read:
                os.read(wakeup_read, 4096)
            else:
                line = stream.readline()
                if not line:
                    return  # the executor is gone; children carry on as their own sessions
                child = _fork_trial(json.loads(line)["launch"],
                                    [connection.fileno(), listener.fileno(), wakeup_read, wakeup_write],
                                    announce=lambda pid: _send(stream, {"pid": pid}))
                children.add(child)
        _reap(children, stream)


def _unsafe_to_fork() -> str | None:
    tasks = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else threading.active_count()
    if tasks > 1:
        return f"the preloaded modules started {tasks - 1} thread(s); forking then is unsafe"
    return None


def _reap(children: set[int], stream: Any) -> None:
    for pid in list(children):
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            children.discard(pid)
            _send(stream, {"exit": pid, "returncode": os.waitstatus_to_exitcode(status)})


def _fork_trial(request: dict[str, Any], server_fds: list[int], announce: Callable[[int], None]) -> int:
    """Fork a child for the trial and `announce` its pid; the child leads its own session (so it can be
    signalled) before it is announced, and runs the trial only after (it exits if the server dies between)."""
    ready_read, ready_write = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(ready_write)
        os.close(go_read)
        os.read(ready_read, 1)
        os.close(ready_read)
        announce(pid)
        os.write(go_write, b"1")
        os.close(go_write)
        return pid
    code = 1
    try:
        os.setsid()
        os.close(ready_read)
        os.close(go_write)
        os.write(ready_write, b"1")
        os.close(ready_write)
        if os.read(go_read, 1):
            os.close(go_read)
            signal.set_wakeup_fd(-1)
            for fd in server_fds:
                os.close(fd)
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            status_path = Path(request["exit_status_dir"]) / str(os.getpid())
            status_path.unlink(missing_ok=True)
            code = _run_trial(request)
            status_path.write_text(str(code & 0xFF))
    finally:
        os._exit(code)


def _run_trial(request: dict[str, Any]) -> int:
    log = os.open(request["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script = request["argv"][0]
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if exit_.code is not None and not isinstance(exit_.code, int):
            print(exit_.code, file=sys.stderr)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    try:
        atexit._run_exitfuncs()
    except Exception:
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _send(stream: Any, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()
