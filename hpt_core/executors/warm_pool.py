"""Warm trial starts: a pool of preloaded interpreters (`hpt_core.preloaded`), started ahead of need.

Each is a fresh process started through the shell with a trial slot's environment (hpt's variables aside),
that imports the experiment's heavy modules and waits. One whose preloads started threads (torch, TensorFlow)
takes one trial (argv, working directory, the full environment with the trial's secret, output file), runs the
script as `__main__` and ends: nothing threaded is ever forked. One that is still single-threaded forks a child
per trial and stays, so such a trial costs a fork instead of an interpreter's start; it tells the executor each
child's exit status (`ForkedTrial`). Either way the trial's process is a session and process group of its own
like a cold one: restarts, time limits, signals and logs work unchanged.

Which modules: `executor.preload` when the experiment file gives it; else what the experiment's first trial
imported (it writes `trial-imports.json` in the experiment directory at start-up and exit); until then, the
third-party packages the script imports at its top level. The script's own modules are never preloaded, so
edits to them are seen.

An interpreter cannot take a trial while it still imports, when its preload failed, when it was started with
another environment than the trial's (a different `CUDA_VISIBLE_DEVICES`, thread count, ...), or when it is
stopped or gone: the trial then starts cold, and `take` says why. One that ends while it waits is replaced.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

from hpt_core.executors.process_group import group_alive, process_stopped, signal_group
from hpt_core.private_files import open_private

PYTHON_NAMES = ("python", "python3", f"python3.{sys.version_info.minor}")
IMPORTS_RECORD = "trial-imports.json"
"""In the experiment directory: the top-level modules the first trial imported (a JSON list), read by the pool."""
IMPORTS_RECORD_VARIABLE = "HPT_IMPORTS_RECORD"
"""Set in a trial's environment while no record exists: the trial writes what it imported to this path."""
POOL_LOG = "warm-pool.log"
"""In the experiment directory: what the pool's interpreters printed while preloading, and why any was unfit."""
FORK_REPLY_SECONDS = 10.0
"""How long a forking interpreter may take to say which process it forked for a trial."""
PRELOAD_WAIT_SECONDS = 120.0
"""How long trials wait for an interpreter that is still preloading rather than start cold beside it: a preload
that takes longer (or hangs) holds no trial back."""
ENDED_READ_SECONDS = 1.0
"""How long the reader of an interpreter that has ended may take to finish reading what it said."""
LOST_RETURNCODE = 1
"""The exit status given to a forked trial whose interpreter ended before it could tell the trial's (an error)."""
_PRELOADED_MAIN = "import sys; from hpt_core.preloaded import main; main(int(sys.argv[1]), sys.argv[2:])"


def python_script_of(command: str, path: str | None = None) -> tuple[str, list[str]] | None:
    """The interpreter (found on `path`) and `[script, *args]` when `command` runs a Python script plainly
    (`python train.py --x 1`), else None."""
    if any(character in command for character in "|&;<>()$`*?~\\\n'\""):
        return None
    parts = shlex.split(command)
    if len(parts) < 2 or not parts[1].endswith(".py"):
        return None
    interpreter = shutil.which(parts[0], path=path)
    if interpreter is None or not (parts[0] in PYTHON_NAMES or Path(parts[0]).name.startswith("python")):
        return None
    return interpreter, parts[1:]


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


def slot_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The part of a trial's environment an interpreter is started with: all but hpt's per-trial variables."""
    return {name: value for name, value in environment.items() if not name.startswith("HPT_")}


class ForkedTrial:
    """A trial that a forking interpreter runs as its child, watched through that interpreter (only a process's
    parent learns its exit status); `pid`, `returncode`, `poll()` and `wait()` as `subprocess.Popen`'s."""

    def __init__(self, pid: int, interpreter: subprocess.Popen[bytes]) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._on_end: Callable[[], None] | None = None
        self._interpreter = interpreter
        self._told = threading.Event()

    def ended(self, returncode: int) -> None:
        self.returncode = returncode
        self._told.set()
        if self._on_end is not None:
            self._on_end()

    def call_when_ended(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the trial has ended (at once if it has; from the thread that learns of it)."""
        self._on_end = callback
        if self.returncode is not None:
            callback()

    def poll(self) -> int | None:
        """The exit status once the trial has ended. Should its interpreter end first, a trial whose processes
        have all ended gets `LOST_RETURNCODE`."""
        if self.returncode is None and self._interpreter.poll() is not None and not group_alive(self.pid):
            self.ended(LOST_RETURNCODE)
        return self.returncode

    def wait(self) -> int:
        while not self._told.wait(0.5):
            self.poll()
        return self.returncode  # type: ignore[return-value]


@dataclass
class _Interpreter:
    """A preloaded interpreter waiting for a trial. A thread reads its status pipe from its start: what it preloaded
    (then `on_ready` is called) and, for one that forks, its children's pids and exit statuses."""

    process: subprocess.Popen[bytes]
    interpreter: str
    environment: dict[str, str]
    modules: list[str]
    status_read: int
    on_ready: Callable[[], None] | None = None
    started: float = field(default_factory=time.monotonic)
    result: dict | None = field(default=None)
    """What it preloaded, what failed and whether it forks, once it has said so (set by its reader thread)."""
    forked: queue.Queue[ForkedTrial] = field(default_factory=queue.Queue)
    children: dict[int, ForkedTrial] = field(default_factory=dict)
    reader: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read_status, name=f"hpt-preloaded-{self.process.pid}",
                                       daemon=True)
        self.reader.start()

    @property
    def forks(self) -> bool:
        """Whether it forks a child per trial and stays (it was single-threaded after preloading)."""
        return bool(self.result and self.result.get("forks"))

    def fork_trial(self) -> tuple[ForkedTrial | None, str]:
        """The trial it forked for the request just handed over; or None and why not."""
        try:
            return self.forked.get(timeout=FORK_REPLY_SECONDS), ""
        except queue.Empty:
            return None, f"it did not say within {FORK_REPLY_SECONDS:.0f} s which process it forked for the trial"

    def _read_status(self) -> None:
        """Read the status line, then `{"forked": pid}` and `{"ended": pid, "returncode": n}` lines until the
        interpreter has ended (one that does not fork closes the pipe after its status line)."""
        pending = b""
        while chunk := os.read(self.status_read, 65536):
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                message = json.loads(line)
                if self.result is None:
                    self.result = message
                    if self.on_ready is not None:
                        self.on_ready()
                elif "forked" in message:
                    trial = self.children[message["forked"]] = ForkedTrial(message["forked"], self.process)
                    self.forked.put(trial)
                else:
                    self.children.pop(message["ended"]).ended(message["returncode"])
        os.close(self.status_read)

    def discard(self) -> None:
        """End it; a forking one that still has trials is only told to end once they have (closing its stdin)."""
        if self.forks and self.children:
            self.process.stdin.close()
            return
        signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.close()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()


class WarmPool:
    """Up to `size` preloaded interpreters waiting for trials of one experiment."""

    def __init__(self, directory: Path, size: int, preload: list[str] | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        """`on_ready` is called (from another thread) when an interpreter has finished preloading."""
        self.directory = directory
        self.on_ready = on_ready
        self.size = max(1, size)
        self.explicit = list(preload) if preload is not None else None
        self.log_path = directory / POOL_LOG
        self.imports_record = directory / IMPORTS_RECORD
        self._waiting: list[_Interpreter] = []
        self._died_preloading = ""  # why no interpreter waits, when the last one died of its preload

    def modules(self, script: Path) -> list[str]:
        """What the next interpreter preloads: `executor.preload`, else the first trial's imports, else the script's."""
        if self.explicit is not None:
            return self.explicit
        try:
            return list(json.loads(self.imports_record.read_text()))
        except (OSError, ValueError):
            return third_party_imports(script)

    def take(self, interpreter: str, argv: list[str], cwd: Path, environment: dict[str, str],
             log: BinaryIO) -> tuple[subprocess.Popen[bytes] | ForkedTrial | None, str, bool]:
        """A waiting interpreter of this trial's slot, now running the trial (output to `log`, which first gets a
        line saying what was preloaded), and that note; or None and why the trial starts cold, and whether that
        is a fault to tell the user of (an unfit interpreter, which is discarded) rather than the pool's normal
        course (none ready yet, or none for this slot)."""
        self.replace_ended()
        wanted = slot_environment(environment)
        mine = [waiting for waiting in self._waiting if waiting.interpreter == interpreter
                and waiting.environment == wanted]
        if not mine and self._waiting:
            other = self._waiting[0]
            differing = sorted(name for name in {*other.environment, *wanted}
                               if other.environment.get(name) != wanted.get(name))
            return None, f"the waiting interpreters were started for another trial slot " \
                         f"({', '.join(differing) or other.interpreter} differ)", False
        reasons, faults = [], []
        for waiting in mine:
            reason = _unfit(waiting)
            if reason == "":
                note = f"warm start: preloaded {', '.join(waiting.result['preloaded']) or 'nothing'}" + \
                    (" (forked)" if waiting.forks else "")
                log.write(f"hpt: {note}\n".encode())
                log.flush()
                request = json.dumps({"argv": argv, "cwd": str(cwd), "env": environment, "log_path": log.name})
                reason = _hand_over(waiting, (request + "\n").encode())
                if reason == "" and waiting.forks:
                    trial, reason = waiting.fork_trial()
                    if trial is not None:
                        self._died_preloading = ""
                        return trial, note, False
                elif reason == "":
                    self._waiting.remove(waiting)
                    waiting.close()
                    self._died_preloading = ""
                    return waiting.process, note, False
            if reason.startswith("it is still importing"):
                reasons.append(reason)
            else:
                faults.append(reason)
                self._waiting.remove(waiting)
                waiting.discard()
        if faults:
            return None, "; ".join(dict.fromkeys(faults)), True
        if not reasons and self._died_preloading:
            return None, self._died_preloading, True
        return None, "; ".join(dict.fromkeys(reasons)) or "no preloaded interpreter was waiting", False

    def top_up(self, interpreter: str, script: Path, environment: dict[str, str]) -> None:
        """Start interpreters with this trial slot's environment until `size` are waiting; when all that wait
        are for other slots, the oldest of them makes room."""
        wanted = slot_environment(environment)
        if self._waiting and len(self._waiting) >= self.size and not any(
                waiting.interpreter == interpreter and waiting.environment == wanted for waiting in self._waiting):
            self._waiting.pop(0).discard()
        while len(self._waiting) < self.size:
            self._start(interpreter, self.modules(script), wanted)

    def replace_ended(self) -> None:
        """Replace every interpreter that ended while it waited (killed, out of memory), saying so in the log. One
        that ended while it preloaded is not replaced until the next launch, so an import that kills its
        interpreter costs one attempt a launch, never a loop."""
        for waiting in list(self._waiting):
            if waiting.process.poll() is not None:
                self._waiting.remove(waiting)
                waiting.reader.join(ENDED_READ_SECONDS)  # what it said before it ended
                preloaded = waiting.result is not None
                waiting.close()
                self._log(f"the preloaded interpreter {waiting.process.pid} ended while it "
                          f"{'waited' if preloaded else 'preloaded'} (exit status {waiting.process.returncode}); "
                          f"{'another one is started' if preloaded else 'another one starts with the next launch'}")
                if preloaded:
                    self._start(waiting.interpreter, waiting.modules, waiting.environment)
                else:
                    self._died_preloading = f"the last preloaded interpreter ended while it preloaded (exit status " \
                                            f"{waiting.process.returncode}; its output is in {self.log_path})"

    def preloading(self) -> bool:
        """Whether a waiting interpreter is still importing (a trial of its slot launched now would start cold)."""
        return any(map(_still_preloading, self._waiting))

    def worth_waiting_for(self, interpreter: str) -> bool:
        """Whether an interpreter (the executable `interpreter`) is still preloading, alive, not stopped, for less
        than `PRELOAD_WAIT_SECONDS`: a trial of it launched now would start cold beside it, which takes as long as
        the rest of the preload and competes with it for the cores, so the trial is better launched once it is
        ready."""
        return any(waiting.interpreter == interpreter and _still_preloading(waiting)
                   and not process_stopped(waiting.process.pid)
                   and time.monotonic() - waiting.started < PRELOAD_WAIT_SECONDS for waiting in self._waiting)

    def state(self) -> str:
        """How many interpreters wait, and what they preload."""
        if not self._waiting:
            return "no preloaded interpreter waiting"
        ready = [waiting for waiting in self._waiting if waiting.result is not None]
        modules = ", ".join(self._waiting[0].modules) or "nothing"
        return f"{len(ready)} of {len(self._waiting)} preloaded interpreter(s) ready ({modules})"

    def note_cold_start(self, trial_id: int, reason: str) -> None:
        """Write why a trial starts cold to the pool's log."""
        self._log(f"trial {trial_id} starts cold: {reason}")

    def stop(self) -> None:
        """End every waiting interpreter."""
        for waiting in self._waiting:
            waiting.discard()
        self._waiting = []

    def _start(self, interpreter: str, modules: list[str], environment: dict[str, str]) -> None:
        status_read, status_write = os.pipe()
        command = " ".join(shlex.quote(part) for part in
                           ["exec", interpreter, "-c", _PRELOADED_MAIN, str(status_write), *modules])
        self.directory.mkdir(parents=True, exist_ok=True)  # its working directory, and where its log goes
        with open_private(self.log_path) as log:
            process = subprocess.Popen(command, shell=True, cwd=self.directory, env=environment,
                                       stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                       pass_fds=(status_write,), start_new_session=True)
        os.close(status_write)
        os.set_blocking(process.stdin.fileno(), False)  # handing a trial over never waits on the interpreter
        self._waiting.append(_Interpreter(process, interpreter, environment, modules, status_read, self.on_ready))

    def _log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open_private(self.log_path) as log:
            log.write(f"{stamp} hpt: {message}\n".encode())


def _hand_over(waiting: _Interpreter, request: bytes) -> str:
    """Send the trial to the interpreter; "" once it has it all, else why not (it must then be discarded)."""
    try:
        written = os.write(waiting.process.stdin.fileno(), request)
    except OSError as error:  # gone, or a full pipe
        return f"it could not be handed the trial ({error})"
    return "" if written == len(request) else "it could not be handed the trial (the request did not fit its pipe)"


def _still_preloading(waiting: _Interpreter) -> bool:
    return waiting.result is None and waiting.process.poll() is None


def _unfit(waiting: _Interpreter) -> str:
    """Why an interpreter of the trial's slot cannot take it now ("" when it can)."""
    if process_stopped(waiting.process.pid):
        return "it is stopped (SIGSTOP)"
    status = waiting.result
    if status is None:
        return f"it is still importing ({', '.join(waiting.modules)})"
    if status["failed"]:
        return "preloading failed: " + "; ".join(f"{name}: {error}" for name, error in status["failed"].items())
    return ""
