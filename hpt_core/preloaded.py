"""A preloaded interpreter: a fresh Python process that imports an experiment's heavy modules, waits, then runs
one trial as `__main__` and ends with the trial's exit status.

It is started (by `hpt_core.executors.warm_pool`) through the shell, as a trial is, with the trial slot's
environment already set (thread counts, `CUDA_VISIBLE_DEVICES`, ...), so libraries size themselves at import as
they would in a cold start. It imports only the trial side of hpt (this module sits outside `hpt_core.executors`,
whose package imports the controller's side), and is its own
session and process group from the start, so the trial it runs is signalled and watched like a cold one.

Protocol: once it has tried every module it writes one JSON line to its status pipe,
`{"preloaded": [...], "failed": {"name": "error"}}`; then it reads one JSON line from stdin,
`{"argv": [...], "cwd": ..., "env": {...}, "log_path": ...}`, and becomes that trial. Stdin closed without a
request (the executor is gone or stops the pool): it ends.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import io
import json
import os
import sys
import types
from typing import Any


def main(status_fd: int, modules: list[str]) -> None:
    """Preload `modules`, say so on `status_fd`, then run the trial sent on stdin (ends the process)."""
    preloaded, failed = [], {}
    for name in modules:
        try:
            importlib.import_module(name)
            preloaded.append(name)
        except BaseException as error:  # a preload that fails makes this interpreter unfit; it must not die of it
            failed[name] = f"{type(error).__name__}: {error}"
    sys.stdout.flush()
    sys.stderr.flush()
    with os.fdopen(status_fd, "w") as status:
        status.write(json.dumps({"preloaded": preloaded, "failed": failed}) + "\n")
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    become_trial(json.loads(line))


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
