"""The default executor: each trial a process group on this machine, in its own working directory.

>>> import sys, tempfile, time
>>> root = tempfile.mkdtemp()
>>> executor = LocalExecutor(f"{root}/experiment", root, max_concurrent=2)
>>> executor.launch(LaunchSpec(trial_id=1, attempt=1, command=f"{sys.executable} -c 'print(1)'",
...                            env={"HPT_TRIAL_ID": "1"}, log_path=f"{root}/experiment/trial-1.log"))
>>> while not (exits := executor.poll()):
...     time.sleep(0.05)
>>> exits
[TrialExit(trial_id=1, attempt=1, returncode=0)]
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Mapping, Optional, Sequence

from pydantic import AfterValidator

from hpt_core.config import ExecutorOptions, ExperimentConfig, StrictStr
from hpt_core.executors.base import (
    ExecutorError,
    LaunchSpec,
    ResourcesUnavailable,
    TrackingExecutor,
    TrialExit,
    attempt_header,
)
from hpt_core.executors.process_group import (
    group_alive,
    groups_working_in,
    process_start_time,
    shell_returncode,
    signal_group,
)
from hpt_core.executors.resources import GpuPool, cpu_cores, detect_gpus, thread_limits, threads_per_trial
from hpt_core.executors.warm_pool import IMPORTS_RECORD_VARIABLE, ForkedTrial, WarmPool, python_script_of
from hpt_core.executors.workdir import ModelListing, build_link_farm, list_model_dir
from hpt_core.private_files import open_private

NO_GPUS_NOTICE = "no GPUs found: trials run on CPUs"
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _module_name(value: Any) -> Any:
    if isinstance(value, str) and not MODULE_NAME.match(value):
        raise ValueError("must be a Python module name to import, such as `torch` or `lightning.pytorch`")
    return value


class LocalOptions(ExecutorOptions):
    """`executor: {type: local, ...}` (the default)."""

    preload: Optional[list[Annotated[StrictStr, AfterValidator(_module_name)]]] = None
    """The modules each preloaded interpreter imports ahead of a trial (docs/runtime.md, warm starts); by default
    what the experiment's first trial imported."""

_WAIT_STEP_SECONDS = 0.02


@dataclass
class _Attempt:
    """A launched attempt of a trial, until all of its processes have ended."""

    spec: LaunchSpec
    process: subprocess.Popen[bytes] | ForkedTrial
    gpus: tuple[str, ...]
    kill_at: float | None = None
    returncode: int | None = None

    @property
    def pgid(self) -> int:
        return self.process.pid


class LocalExecutor(TrackingExecutor):
    """Runs each trial's command with the shell, as its own process group, in its own working directory.

    - Working directory: `<experiment_dir>/trials/<trial_id>/workdir`, a link farm of `model_dir`
      (see `hpt_core.executors.workdir`) made at the trial's first launch and reused by restarts.
    - Environment: the controller's own, then hpt's defaults (thread limits sized so that the
      trials running at once share the CPU cores; `PYTHONDONTWRITEBYTECODE` so that bytecode of
      the user's modules is not written into the model directory, while installed packages keep
      using their compiled bytecode; `PYTHONUNBUFFERED`), then the
      spec's `env` (so the experiment's variables win), then `CUDA_VISIBLE_DEVICES`, which this
      executor owns: to limit the GPUs hpt uses, set it where hpt runs.
    - GPUs: each trial holds `spec.slots` GPUs of its own until all of its processes have ended;
      `can_launch` says whether they are free, and `launch` raises `ResourcesUnavailable` when not.
      A machine without GPUs runs trials with `CUDA_VISIBLE_DEVICES=""` and says so once in
      `notices()`.
    - Ending: an attempt ends when its whole process group has. Processes left behind by a
      command that ended on its own are killed at once; a terminated trial's processes get the
      grace period. The exit status is the shell's (128 + N read as killed by signal N).
    - Warm starts: a trial whose command runs a Python script plainly is handed to a preloaded interpreter
      when one fits (`hpt_core.executors.warm_pool`, `preload` names the modules), which becomes the trial or,
      when single-threaded, forks it; else it starts cold. Each
      start is recorded (`start_kinds`, `start_notes`, the trial's log and `process.json`) with the reason
      for a cold one. `HPT_WARM_START=0` in this process's environment turns warm starts off.

    The SIGKILL that ends a grace period is sent by the first `poll`, `running`, `can_launch`,
    `launch` or `ensure_stopped` after the deadline, so the controller should poll regularly; `wake_listener`
    is called as soon as an attempt's leading process has ended or a preloaded interpreter is ready.
    POSIX only.
    """

    name = "local"

    options_model = LocalOptions

    @classmethod
    def for_experiment(cls, config: ExperimentConfig, experiment_dir: str, model_dir: str,
                       experiment_id: int) -> LocalExecutor:
        options = config.executor
        return cls(experiment_dir, model_dir, config.searcher.max_concurrent_trials,
                   max_trials=getattr(config.searcher, "max_trials", None),
                   preload=options.preload if isinstance(options, LocalOptions) else None)

    def __init__(
        self,
        experiment_dir: str | Path,
        model_dir: str | Path,
        max_concurrent: int,
        cpu_count: int | None = None,
        *,
        max_trials: int | None = None,
        gpus: Sequence[str] | None = None,
        preload: Sequence[str] | None = None,
    ) -> None:
        """`max_concurrent` (0 = no limit) and `max_trials` bound the trials running at once, which
        sizes their threads and the warm pool (never more interpreters than cores); `cpu_count` defaults to the cores this process may use,
        `gpus` to those found by `detect_gpus`; `preload` (`executor.preload`) to what the first trial imported."""
        if max_concurrent < 0:
            raise ValueError(f"max_concurrent must be >= 0 (0 = no limit), but got {max_concurrent}")
        if cpu_count is not None and cpu_count < 1:
            raise ValueError(f"cpu_count must be >= 1 (or None to count the cores), but got {cpu_count}")
        if max_trials is not None and max_trials < 1:
            raise ValueError(f"max_trials must be >= 1 (or None when unknown), but got {max_trials}")
        self.experiment_dir = Path(experiment_dir).absolute()
        self.model_dir = Path(model_dir).absolute()
        if not self.model_dir.is_dir():
            raise ValueError(f"model_dir must be an existing directory, but got {str(model_dir)!r}")
        self.cores = cpu_count or cpu_cores()
        self.max_concurrent = max_concurrent
        self.max_trials = max_trials
        self.gpus = GpuPool(detect_gpus(os.environ) if gpus is None else gpus)
        super().__init__()
        self._attempts: dict[int, _Attempt] = {}
        if not self.gpus.devices:
            self._notices.append(NO_GPUS_NOTICE)
        at_once = [bound for bound in (max_concurrent, max_trials or 0, self.cores) if bound > 0]
        self._pool = WarmPool(self.experiment_dir, min(at_once), None if preload is None else list(preload),
                              on_ready=self._wake)
        self.starts = {"warm": 0, "cold": 0}
        self.start_kinds: dict[int, str] = {}  # each trial's latest start: "warm" or "cold"
        self.start_notes: dict[int, str] = {}  # what a warm start preloaded, or why a start was cold
        self._faults_told: set[str] = set()  # why preloaded interpreters were unfit, each told to the user once

    def workdir(self, trial_id: int) -> Path:
        """The trial's working directory (it exists once the trial has been launched)."""
        return self.experiment_dir / "trials" / str(trial_id) / "workdir"

    def can_launch(self, spec: LaunchSpec) -> bool:
        """Whether `spec`'s GPUs are free now and no interpreter of the pool is about to be ready for it
        (`WarmPool.worth_waiting_for`); raises `ExecutorError` if this machine has too few GPUs for it."""
        self._collect()
        script = python_script_of(spec.command, spec.env.get("PATH", os.environ.get("PATH")))
        about_to_be_ready = _warm_starts_on() and script is not None and self._pool.worth_waiting_for(script[0])
        return self._gpus_needed(spec) <= self.gpus.free and not about_to_be_ready

    def prepare(self, command: str, env: Mapping[str, str], slots: int) -> None:
        """Start the pool's interpreters for the first trials' slot now, while the controller sets up: the first
        trials then wait for them (`can_launch`) rather than start cold beside them."""
        script = python_script_of(command, env.get("PATH", os.environ.get("PATH")))
        if not _warm_starts_on() or script is None or not (self.model_dir / script[1][0]).is_file():
            return
        gpus = self.gpus.devices[:slots] if slots <= len(self.gpus.devices) else ()
        self._pool.top_up(script[0], self.model_dir / script[1][0], self._environment(env, slots, gpus))

    def launch(self, spec: LaunchSpec) -> None:
        self._refuse_while_alive(spec)
        gpus = self.gpus.acquire(self._gpus_needed(spec))
        if gpus is None:
            raise ResourcesUnavailable(
                f"trial {spec.trial_id} needs {spec.slots} GPU(s) but only {self.gpus.free} of "
                f"{len(self.gpus.devices)} are free; launch it after another trial ends"
            )
        try:
            process = self._start(spec, gpus)
        except BaseException:
            self.gpus.release(gpus)
            raise
        self._attempts[spec.trial_id] = _Attempt(spec, process, gpus)
        if isinstance(process, ForkedTrial):  # its interpreter's reader thread learns of its end: no thread of its own
            process.call_when_ended(self._wake)
        else:
            threading.Thread(target=self._tell_exit, args=(process,), name=f"hpt-trial-{spec.trial_id}-exit",
                             daemon=True).start()
        pgid = self._attempts[spec.trial_id].pgid
        self._process_record(spec.trial_id).write_text(json.dumps({
            "pgid": pgid, "attempt": spec.attempt, "started": process_start_time(pgid),
            "start": self.start_kinds[spec.trial_id], "start_note": self.start_notes[spec.trial_id]}))

    def _tell_exit(self, process: subprocess.Popen[bytes] | ForkedTrial) -> None:
        """Wait for the attempt's leading process to end, then call `wake_listener` (the rest of its process group
        is collected by `poll`)."""
        process.wait()
        self._wake()

    def _wake(self) -> None:
        listener = self.wake_listener
        if listener is not None:
            listener()

    def recover(self, trial_id: int, grace_seconds: float = 10.0) -> int:
        """Stop the processes an earlier controller left for this trial; the last attempt it recorded.

        Each launch records its process group and its leader's start time in `<trial dir>/process.json`;
        that group is stopped only while its leader is that same process or one of its members works in
        this trial's directory, so a reused process id is never hit. Any other process working in the
        trial's directory is the trial's too (a controller that died between starting an attempt and
        recording it leaves one), and its group is stopped as well.
        """
        if trial_id in self._attempts:
            return self._attempts[trial_id].spec.attempt
        record_path = self._process_record(trial_id)
        record = json.loads(record_path.read_text()) if record_path.exists() else {"attempt": 0}
        groups = groups_working_in(self.workdir(trial_id))
        if "pgid" in record and group_alive(record["pgid"]) and \
                process_start_time(record["pgid"]) == record.get("started"):
            groups.add(record["pgid"])
        for pgid in groups:
            signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while any(map(group_alive, groups)) and time.monotonic() < deadline:
            time.sleep(_WAIT_STEP_SECONDS)
        for pgid in groups:
            signal_group(pgid, signal.SIGKILL)
        while any(map(group_alive, groups)):
            time.sleep(_WAIT_STEP_SECONDS)
        return int(record["attempt"])

    def shutdown(self, grace_seconds: float = 10.0) -> None:
        super().shutdown(grace_seconds)
        self._pool.stop()

    def _process_record(self, trial_id: int) -> Path:
        return self.experiment_dir / "trials" / str(trial_id) / "process.json"

    def _gpus_needed(self, spec: LaunchSpec) -> int:
        if not self.gpus.devices:
            return 0
        if spec.slots > len(self.gpus.devices):
            raise ExecutorError(
                f"trial {spec.trial_id} needs {spec.slots} GPUs (resources.slots_per_trial) but this "
                f"machine has {len(self.gpus.devices)}: {', '.join(self.gpus.devices)}"
            )
        return spec.slots

    def warm_start_state(self) -> str:
        """How trials start: counts of warm and cold starts, and the pool of preloaded interpreters."""
        if not _warm_starts_on():
            return f"warm starts off (HPT_WARM_START=0); {self.starts['cold']} cold starts"
        return f"{self.start_summary()}; {self._pool.state()}"

    def preloading(self) -> bool:
        """Whether a preloaded interpreter is still importing: a trial launched now may start cold."""
        return self._pool.preloading()

    def start_summary(self) -> str:
        return f"{self.starts['warm']} warm, {self.starts['cold']} cold starts"

    def _start(self, spec: LaunchSpec, gpus: tuple[str, ...]) -> subprocess.Popen[bytes] | ForkedTrial:
        workdir = self.workdir(spec.trial_id)
        if not workdir.exists():
            workdir.parent.mkdir(parents=True, exist_ok=True)
            build_link_farm(self._model_listing, workdir)
        log_path = Path(spec.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        environment = self._environment(spec.env, spec.slots, gpus)
        with open_private(log_path) as log:
            log.write(attempt_header(spec.attempt))
            log.flush()
            process, note = self._start_warm(spec, workdir, environment, log)
            self.start_kinds[spec.trial_id] = "cold" if process is None else "warm"
            self.start_notes[spec.trial_id] = note
            self.starts[self.start_kinds[spec.trial_id]] += 1
            if process is not None:
                return process
            log.write(f"hpt: cold start: {note}\n".encode())
            log.flush()
            return subprocess.Popen(
                spec.command,
                shell=True,
                cwd=workdir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @functools.cached_property
    def _model_listing(self) -> ModelListing:
        """The model directory as the first launch found it: each trial's link farm is built from this listing
        rather than from a walk of its own (files added to the model directory later are not linked)."""
        return list_model_dir(self.model_dir, exclude=[self.experiment_dir])

    def _start_warm(self, spec: LaunchSpec, workdir: Path, environment: dict[str, str],
                    log: BinaryIO) -> tuple[subprocess.Popen[bytes] | ForkedTrial | None, str]:
        """The trial handed to a preloaded interpreter, and what it preloaded; or None and why it starts cold.
        Either way the pool is then topped up for this trial's slot."""
        if not _warm_starts_on():
            return None, "warm starts are off (HPT_WARM_START=0)"
        script = python_script_of(spec.command, environment.get("PATH"))
        if script is None or not (workdir / script[1][0]).is_file():
            return None, f"the entrypoint is not a plain Python script ({spec.command!r})"
        interpreter, argv = script
        if not self._pool.imports_record.exists() and self._pool.explicit is None:
            environment[IMPORTS_RECORD_VARIABLE] = str(self._pool.imports_record)
        process, note, fault = self._pool.take(interpreter, argv, workdir, environment, log)
        if process is None:
            self._pool.note_cold_start(spec.trial_id, note)
        if fault and note not in self._faults_told:
            self._faults_told.add(note)
            self._notices.append(f"warm starts: trial {spec.trial_id} starts cold: {note} (see {self._pool.log_path})")
        self._pool.top_up(interpreter, self.model_dir / argv[0], environment)
        return process, note

    def _environment(self, env: Mapping[str, str], slots: int, gpus: tuple[str, ...]) -> dict[str, str]:
        gpu_bound = len(self.gpus.devices) // slots if self.gpus.devices and slots else 0
        threads = threads_per_trial(self.cores, [self.max_concurrent, self.max_trials or 0, gpu_bound])
        return {
            **os.environ,
            **thread_limits(threads),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
            "CUDA_VISIBLE_DEVICES": ",".join(gpus),
        }

    def _ask_to_stop(self, attempt: _Attempt) -> None:
        signal_group(attempt.pgid, signal.SIGTERM)

    def _advance(self, attempt: _Attempt) -> bool:
        """Reap, escalate and check one attempt; True once all of its processes have ended."""
        if attempt.returncode is None:
            returncode = attempt.process.poll()
            if returncode is not None:
                attempt.returncode = shell_returncode(returncode)
                if attempt.kill_at is None:
                    attempt.kill_at = time.monotonic()
        if attempt.returncode is not None and not group_alive(attempt.pgid):
            return True
        if attempt.kill_at is not None and time.monotonic() >= attempt.kill_at:
            signal_group(attempt.pgid, signal.SIGKILL)
        return False

    def _collect(self) -> None:
        self._pool.replace_ended()
        for trial_id, attempt in list(self._attempts.items()):
            if self._advance(attempt):
                del self._attempts[trial_id]
                self.gpus.release(attempt.gpus)
                self._exits.append(TrialExit(trial_id, attempt.spec.attempt, attempt.returncode))


def _warm_starts_on() -> bool:
    return os.environ.get("HPT_WARM_START", "1") != "0"


def recorded_start(experiment_dir: str | Path | None, trial_id: int) -> dict[str, str] | None:
    """How the trial's latest attempt started, as `launch` recorded it: `{"start": "warm" | "cold", "start_note": what
    was preloaded, or why it started cold}`; None for a trial this executor never launched."""
    if experiment_dir is None:
        return None
    try:
        record = json.loads((Path(experiment_dir) / "trials" / str(trial_id) / "process.json").read_text())
    except (OSError, ValueError):
        return None
    return {name: record[name] for name in ("start", "start_note") if name in record} or None
