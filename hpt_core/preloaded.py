"""A preloaded interpreter: a fresh Python process that imports an experiment's heavy modules, waits, then runs
trials as `__main__`.

It is started (by `hpt_core.executors.warm_pool`) through the shell, as a trial is, with the trial slot's
environment already set (thread counts, `CUDA_VISIBLE_DEVICES`, ...), so libraries size themselves at import as
they would in a cold start. It imports only the trial side of hpt (this module sits outside `hpt_core.executors`,
whose package imports the controller's side), and is its own
session and process group from the start, so the trial it runs is signalled and watched like a cold one.

Protocol: once it has tried every module it writes one JSON line to its status pipe,
`{"preloaded": [...], "failed": {"name": "error"}, "forks": bool}`, then reads requests from stdin, one JSON line
each: `{"argv": [...], "cwd": ..., "env": {...}, "log_path": ...}`. Stdin closed (the executor is gone or stops
the pool): it ends.

- `forks` false (its preloads started threads, as torch and TensorFlow do: a fork would copy them dead): it
  becomes the one trial it is sent, and ends with the trial's exit status.
- `forks` true (still one thread after preloading): it forks a child per request and stays. The child makes
  itself a session and process group of its own, as a cold start is, and becomes the trial; the interpreter
  writes `{"forked": pid}` at once and `{"ended": pid, "returncode": n}` (as `subprocess` gives it) when the
  trial has ended, since only it can collect its children's exit status.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import gc
import importlib
import importlib.machinery
import io
import json
import os
import select
import signal
import sys
import threading
import types
from typing import Any


def main(status_fd: int, modules: list[str]) -> None:
    """Preload `modules`, say so on `status_fd`, then run the trials sent on stdin (see the module's protocol)."""
    preloaded, failed = [], {}
    for name in modules:
        try:
            importlib.import_module(name)
            preloaded.append(name)
        except BaseException as error:  # a preload that fails makes this interpreter unfit; it must not die of it
            failed[name] = f"{type(error).__name__}: {error}"
    sys.stdout.flush()
    sys.stderr.flush()
    forks = single_threaded()
    status = os.fdopen(status_fd, "w", buffering=1)
    status.write(json.dumps({"preloaded": preloaded, "failed": failed, "forks": forks}) + "\n")
    if forks:
        serve(status)
        return
    status.close()
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    become_trial(json.loads(line))


def single_threaded() -> bool:
    """Whether this process has one thread, for Python and for the OS (a library's native threads count)."""
    import psutil  # here, not at the top: a trial that imports this module only to be handed a request needs none

    return threading.active_count() == 1 and psutil.Process().num_threads() == 1


def serve(status: Any) -> None:
    """Fork a trial per request on stdin, telling `status` each child's pid and exit status, until stdin has closed
    and every child has ended. Returns in a child too, once it has become its trial and run it."""
    woken_read, woken_write = os.pipe()
    for end in (woken_read, woken_write):
        os.set_blocking(end, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a child's end wakes the select below
    signal.set_wakeup_fd(woken_write)
    gc.freeze()  # the preloaded objects are never collected in a child, so its collections copy none of their pages
    pending, listening, running = b"", True, 0
    while listening or running:
        readable = select.select([woken_read, 0] if listening else [woken_read], [], [])[0]
        if woken_read in readable:
            while _drain(woken_read):
                pass
            running -= _tell_ended(status)
        if 0 not in readable:
            continue
        chunk = os.read(0, 1 << 20)
        listening = bool(chunk)  # closed: the executor is gone or stops the pool; no more trials come
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(woken_read)
                os.close(woken_write)
                status.close()
                os.setsid()
                _reseed_numpy()
                try:
                    become_trial(json.loads(line))
                except SystemExit as exit_:
                    end_forked_trial(exit_.code)
                end_forked_trial(None)
            running += 1
            status.write(json.dumps({"forked": pid}) + "\n")


def end_forked_trial(code: Any) -> None:
    """End a forked trial as an interpreter ends (its non-daemon threads joined, `atexit` run, every open file
    flushed, `sys.exit`'s exit status), without tearing down the preloaded modules: that would touch, and so
    copy, every page the child shares with its interpreter, which costs more than the rest of a short trial. What
    is left out is what Python never promises at exit: `__del__` of objects still alive then."""
    current = threading.current_thread()
    while others := [thread for thread in threading.enumerate() if thread is not current and not thread.daemon]:
        for thread in others:
            thread.join()
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        atexit._run_exitfuncs()  # what the interpreter calls at exit, which a fork's os._exit skips
    finally:
        for opened in gc.get_objects():  # the child's own objects: files the trial left open
            if isinstance(opened, io.IOBase):
                with contextlib.suppress(Exception):
                    if not opened.closed and opened.writable():
                        opened.flush()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code or 0)


def _drain(descriptor: int) -> bool:
    try:
        return bool(os.read(descriptor, 4096))
    except BlockingIOError:
        return False


def _tell_ended(status: Any) -> int:
    """Collect every child that has ended and say so on `status`; how many there were."""
    ended = 0
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended += 1
        status.write(json.dumps({"ended": pid, "returncode": os.waitstatus_to_exitcode(wait_status)}) + "\n")


def _reseed_numpy() -> None:
    """numpy's global generator, seeded when numpy was preloaded, seeded afresh (a cold start's is its own)."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def become_trial(request: dict[str, Any]) -> None:
    """Take the trial's output file, directory, environment and arguments, and run its script as `__main__`."""
    log = os.open(request["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # private, as a cold start's
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.chdir(request["cwd"])
    added_at_start = {name: value for name, value in os.environ.items() if name not in request["env"]}
    os.environ.clear()  # variables the shell and interpreter added at start (e.g. LC_CTYPE) stay, as in a cold start
    os.environ.update({**request["env"], **added_at_start, "PWD": request["cwd"]})
    script = os.path.abspath(request["argv"][0])
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(os.path.realpath(script))  # as Python sets it for `python script.py`
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=script, __cached__=None, __builtins__=builtins,
                         __loader__=importlib.machinery.SourceFileLoader("__main__", script))
    sys.modules["__main__"] = main
    try:
        with io.open_code(script) as source:
            code = compile(source.read(), script, "exec")
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException:
        kind, error, trace = sys.exc_info()  # shown from the script's frame on, as in a cold start, through the
        error.with_traceback(trace.tb_next)  # trial's hook (hpt reports an uncaught InvalidHP through it)
        sys.excepthook(kind, error, trace.tb_next)
        sys.exit(1)
