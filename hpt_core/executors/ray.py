"""Trials on a Ray cluster: each attempt of a trial a Ray actor (`ray_trial.TrialProcess`) on some node.

`ray` is imported only when a `RayExecutor` is made. The model directory travels with Ray's runtime
environment: a snapshot of it (`model.zip` in the experiment's directory, taken when the controller
first starts) is the `working_dir` of the controller's Ray job, which every trial's actor inherits,
so nodes need neither the model directory nor a shared filesystem for code. Checkpoints need storage every node reaches (see docs/ray.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import signal
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, Field

from hpt_core.config import ExecutorOptions, ExperimentConfig, StrictFloat, StrictStr
from hpt_core.errors import ConfigError, Problem
from hpt_core.executors.base import LaunchSpec, TrackingExecutor, TrialExit, attempt_header
from hpt_core.executors.local import NO_GPUS_NOTICE
from hpt_core.executors.workdir import SKIPPED_NAMES
from hpt_core.private_files import open_private

logger = logging.getLogger(__name__)

#: Ray's limit for a runtime environment's working_dir (its unzipped size), see Ray's runtime environment docs.
MAX_PACKAGE_BYTES = 500 * 1024 * 1024
PACKAGE_NAME = "model.zip"
LOST_RETURNCODE = -signal.SIGKILL
"""The exit status of an attempt whose Ray worker or node died: a crash, so the trial restarts."""
OUTPUT_WAIT_SECONDS = 1.0
ACTOR_KILL_DELAY_SECONDS = 5.0


RAY_ADDRESS = re.compile(r"^(auto|ray://[^\s/:]+:\d+|[^\s/:]+:\d+)$")


def _ray_address(value: Any) -> Any:
    if isinstance(value, str) and not RAY_ADDRESS.match(value):
        raise ValueError("must be `auto` (the cluster this machine belongs to), `ray://HOST:PORT` (Ray Client) or "
                         "`HOST:PORT` (the head node's GCS address); leave it out to use or start Ray on this machine")
    return value


class RayOptions(ExecutorOptions):
    """`executor: {type: ray, ...}`: which cluster, and what each trial needs of it (see docs/ray.md)."""

    address: Optional[Annotated[StrictStr, AfterValidator(_ray_address)]] = None
    cpus_per_trial: Annotated[StrictFloat, Field(ge=0)] = 1.0
    custom_resources: dict[StrictStr, Annotated[StrictFloat, Field(gt=0)]] = Field(default_factory=dict)
    controller_host: Optional[StrictStr] = None


@dataclass
class _Attempt:
    """A launched attempt: its actor, the request for its next output, and when to escalate a stop."""

    spec: LaunchSpec
    actor: Any
    output_ref: Any
    kill_at: float | None = None
    killed: bool = False


class RayExecutor(TrackingExecutor):
    """Runs each trial's command on a Ray cluster, one actor per attempt, with the trial's resources.

    - Resources per trial: `executor.cpus_per_trial` CPUs, `resources.slots_per_trial` GPUs (none on a
      cluster without GPUs, said once in `notices()`) and `executor.custom_resources`. A trial whose
      resources are busy waits in Ray's queue; it counts as running for `max_concurrent_trials`.
    - Code: the snapshot `<experiment_dir>/model.zip` (at most `MAX_PACKAGE_BYTES` unzipped); each
      trial works in a link farm of it on its node, reused by restarts on that node.
    - Logs: the actor's output is appended to the spec's `log_path` here, by the controller.
    - Ending: `terminate` sends SIGTERM to the trial's process group, SIGKILL after the grace period,
      and kills the actor `ACTOR_KILL_DELAY_SECONDS` later if it still has not answered (a lost node).
      An attempt whose actor dies (its worker or node) ends with `LOST_RETURNCODE`.

    Stopping and output are carried out by the first `poll`, `running`, `ensure_stopped` or
    `shutdown` after they are due, so the controller should poll regularly.
    """

    name = "ray"
    options_model = RayOptions

    def __init__(self, experiment_dir: str | Path, model_dir: str | Path, settings: RayOptions) -> None:
        self.experiment_dir = Path(experiment_dir).absolute()
        self.settings = settings
        self.package = snapshot_model_dir(Path(model_dir), self.experiment_dir)
        self.package_key = _file_digest(self.package)[:12]
        self._ray = _connect(settings.address, self.package)
        super().__init__()
        self._attempts: dict[int, _Attempt] = {}
        self._has_gpus = self._ray.cluster_resources().get("GPU", 0) > 0
        if not self._has_gpus:
            self._notices.append(NO_GPUS_NOTICE)

    @classmethod
    def for_experiment(cls, config: ExperimentConfig, experiment_dir: str, model_dir: str,
                       experiment_id: int) -> RayExecutor:
        return cls(experiment_dir, model_dir, config.executor)

    @property
    def controller_host(self) -> str:
        """The address trials reach the controller at: `executor.controller_host`, else the one Ray uses here."""
        return self.settings.controller_host or self._ray.util.get_node_ip_address()

    def launch(self, spec: LaunchSpec) -> None:
        self._refuse_while_alive(spec)
        log_path = Path(spec.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open_private(log_path) as log:
            log.write(attempt_header(spec.attempt))
        actor = self._actor_class.options(
            num_cpus=self.settings.cpus_per_trial,
            num_gpus=spec.slots if self._has_gpus else 0,
            resources=dict(self.settings.custom_resources),
            max_concurrency=4,
        ).remote(spec.command, spec.env, self._workdir_key(spec.trial_id),
                 max(1, int(self.settings.cpus_per_trial)), spec.attempt)
        self._attempts[spec.trial_id] = _Attempt(spec, actor, actor.output.remote(OUTPUT_WAIT_SECONDS))
        self._attempt_record(spec.trial_id).write_text(json.dumps({"attempt": spec.attempt}))

    def _workdir_key(self, trial_id: int) -> str:
        """The trial's folder on a node: its code package, its experiment folder's name (the experiment's uuid, so
        experiments of two storages sharing a cluster never meet) and its id."""
        return f"{self.package_key}-{self.experiment_dir.name}-{trial_id}"

    def recover(self, trial_id: int, grace_seconds: float = 10.0) -> int:
        """The last attempt an earlier controller launched for the trial (0 if none).

        An earlier controller's actors do not outlive it: Ray ends the actors of a driver that exits,
        and their trial processes end with them.
        """
        if trial_id in self._attempts:
            return self._attempts[trial_id].spec.attempt
        record = self._attempt_record(trial_id)
        return int(json.loads(record.read_text())["attempt"]) if record.exists() else 0

    def _attempt_record(self, trial_id: int) -> Path:
        directory = self.experiment_dir / "trials" / str(trial_id)
        directory.mkdir(parents=True, exist_ok=True)
        return directory / "process.json"

    @functools.cached_property
    def _actor_class(self) -> Any:
        from hpt_core.executors.ray_trial import TrialProcess

        return self._ray.remote(TrialProcess)

    def _ask_to_stop(self, attempt: _Attempt) -> None:
        attempt.actor.signal.remote(signal.SIGTERM)

    def _collect(self) -> None:
        """Fetch the output that is ready, record the attempts that ended, and escalate overdue stops."""
        if not self._attempts:
            return
        by_ref = {attempt.output_ref: trial_id for trial_id, attempt in self._attempts.items()}
        ready, _ = self._ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
        for ref in ready:
            self._receive(by_ref[ref], ref)
        now = time.monotonic()
        for attempt in self._attempts.values():
            if attempt.kill_at is not None and now >= attempt.kill_at and not attempt.killed:
                attempt.actor.signal.remote(signal.SIGKILL)
                attempt.killed = True
            elif attempt.killed and now >= attempt.kill_at + ACTOR_KILL_DELAY_SECONDS:
                self._ray.kill(attempt.actor, no_restart=True)

    def _receive(self, trial_id: int, ref: Any) -> None:
        attempt = self._attempts[trial_id]
        try:
            chunk, returncode = self._ray.get(ref)
        except self._ray.exceptions.RayActorError as error:
            chunk, returncode = _lost_message(attempt, error), LOST_RETURNCODE
        except self._ray.exceptions.RayError as error:
            chunk, returncode = f"=== attempt {attempt.spec.attempt} failed to start: {error} ===\n".encode(), 1
        if chunk:
            with open_private(attempt.spec.log_path) as log:
                log.write(chunk)
        if returncode is None:
            attempt.output_ref = attempt.actor.output.remote(OUTPUT_WAIT_SECONDS)
            return
        self._ray.kill(attempt.actor, no_restart=True)
        del self._attempts[trial_id]
        self._exits.append(TrialExit(trial_id, attempt.spec.attempt, returncode))


def snapshot_model_dir(model_dir: Path, experiment_dir: Path) -> Path:
    """`<experiment_dir>/model.zip`: the model directory as trials get it, made once (a resume reuses it).

    It leaves out what the local executor's link farm leaves out (`.git`, `__pycache__`, `.venv`)
    and the experiment's own directory; raises `ConfigError` when the rest is over Ray's limit.
    """
    package = experiment_dir / PACKAGE_NAME
    if package.exists():
        return package
    source = model_dir.resolve()
    if not source.is_dir():
        raise ConfigError([Problem("model_dir", "must be an existing directory (its snapshot for Ray is made when "
                                   "the controller first starts)", str(model_dir))])
    files = _model_files(source, experiment_dir.resolve())
    total = sum(path.stat().st_size for path in files)
    if total > MAX_PACKAGE_BYTES:
        largest = ", ".join(f"{path.relative_to(source)} ({path.stat().st_size / 2**20:.0f} MiB)"
                            for path in sorted(files, key=lambda path: -path.stat().st_size)[:3])
        raise ConfigError([Problem(
            "model_dir", f"is {total / 2**20:.0f} MiB, over the {MAX_PACKAGE_BYTES // 2**20} MiB that Ray ships to "
            f"its nodes (largest: {largest}); move data out of it to storage the nodes reach", str(source))])
    experiment_dir.mkdir(parents=True, exist_ok=True)
    partial = package.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(source).as_posix())
    os.replace(partial, package)
    return package


def _model_files(source: Path, experiment_dir: Path) -> list[Path]:
    files = []
    for directory, subdirectories, names in os.walk(source):
        here = Path(directory)
        subdirectories[:] = sorted(name for name in subdirectories
                                   if name not in SKIPPED_NAMES and (here / name).resolve() != experiment_dir)
        files.extend(here / name for name in sorted(names) if name not in SKIPPED_NAMES and (here / name).is_file())
    return files


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _lost_message(attempt: _Attempt, error: Exception) -> bytes:
    if attempt.killed:
        return f"=== attempt {attempt.spec.attempt} killed with its actor: it did not stop in time ===\n".encode()
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"=== attempt {attempt.spec.attempt} lost: its Ray worker or node died ({first_line}) ===\n".encode()


def _connect(address: str | None, package: Path) -> Any:
    """The `ray` module, this process connected to the cluster at `address` (None: start Ray on this machine)
    as a Ray job whose working_dir is `package`.

    Ray ships a local working_dir only for a whole job, so a connection made for another package (an
    earlier experiment in this process, or the user's own `ray.init`) is closed and made again.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError([Problem("executor.type", "needs Ray on this machine: pip install -e '.[ray]'",
                                   "ray")]) from None
    wanted = (address, str(package))
    if ray.is_initialized() and _connection.get("for") != wanted:
        ray.shutdown()
    if not ray.is_initialized():
        try:
            ray.init(address=address, runtime_env={"working_dir": str(package)}, log_to_driver=False,
                     logging_level=logging.WARNING)
        except ConnectionError as error:
            raise ConfigError([Problem("executor.address", f"no Ray cluster answers there: {error}",
                                       address)]) from None
        _connection["for"] = wanted
    return ray


_connection: dict[str, tuple[str | None, str]] = {}
