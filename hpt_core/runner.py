"""An experiment's life outside the controller: create its records and directories, run or resume its
controller on an executor (in the foreground or the background), and delete it."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from hpt_core import checkpoint_storage
from hpt_core.checkpoint_storage import is_local_path
from hpt_core.config import ExperimentConfig
from hpt_core.controller import Controller
from hpt_core.lifecycle import EndReason
from hpt_core.errors import ConfigError, Problem
from hpt_core.ownership import ExperimentOwned, Lease, holder_description, live_lease
from hpt_core.plugins import create_searcher, executors, load_config
from hpt_core.private_files import open_private, private_folder
from hpt_core.storage import (
    ExperimentRecord,
    ExperimentState,
    Storage,
    TrialState,
    experiment_dir,
    hpt_home,
    notebook_folders,
)


def create_experiment(config: ExperimentConfig, model_dir: str | Path, storage: Storage) -> int:
    """Record a new experiment (ACTIVE) and make its directory; returns its id."""
    model_dir = Path(model_dir).resolve()
    if not model_dir.is_dir():
        raise ConfigError([Problem("model_dir", "must be an existing directory", str(model_dir))])
    if not config.entrypoint:
        raise ConfigError([Problem("entrypoint", "required to run an experiment, e.g. `python train.py`")])
    _check_warm_start(config, storage)
    seed = config.reproducibility.experiment_seed
    if seed is None:
        seed = secrets.randbelow(2**32)
    experiment_id = storage.create_experiment(
        name=config.name or model_dir.name, config=config.to_dict(), model_dir=str(model_dir), seed=seed,
        secret=secrets.token_hex(32), description=config.description,
    )
    directory = experiment_dir(private_folder(hpt_home()), storage.get_experiment(experiment_id).uuid)
    (directory / "trials").mkdir(parents=True, exist_ok=True)
    storage.set_experiment_dir(experiment_id, str(directory))
    return experiment_id


def _check_warm_start(config: ExperimentConfig, storage: Storage) -> None:
    """A warm start must name a checkpoint or trial that storage knows (and that has a checkpoint)."""
    searcher = config.searcher
    try:
        if searcher.source_checkpoint is not None and storage.get_checkpoint(searcher.source_checkpoint).state != "COMPLETED":
            raise ConfigError([Problem("searcher.source_checkpoint", "this checkpoint was deleted",
                                       searcher.source_checkpoint)])
        if searcher.source_trial_id is not None and storage.latest_checkpoint(searcher.source_trial_id) is None:
            raise ConfigError([Problem("searcher.source_trial_id", "this trial has no checkpoint to start from",
                                       searcher.source_trial_id)])
    except LookupError:
        field = "source_checkpoint" if searcher.source_checkpoint is not None else "source_trial_id"
        raise ConfigError([Problem(f"searcher.{field}", "no such checkpoint or trial in this storage",
                                   getattr(searcher, field))]) from None


def build_controller(
    storage: Storage, experiment_id: int, *, host: str = "127.0.0.1",
    on_tick: Callable[[Controller], None] | None = None,
) -> Controller:
    """The controller of a recorded experiment, with its search method and executor."""
    record = storage.get_experiment(experiment_id)
    config = load_config(record.config)
    searcher = create_searcher(config, seed=record.seed)
    executor = executors()[config.executor.type].for_experiment(config, record.experiment_dir, record.model_dir,
                                                                 experiment_id)
    host = executor.controller_host or host
    return Controller(
        storage, experiment_id, config, searcher, executor, secret=record.secret, seed=record.seed,
        checkpoint_root=checkpoint_root(config, record.experiment_dir, record.uuid), host=host,
        on_tick=on_tick,
    )


def check_resumable(storage: Storage, experiment_id: int) -> None:
    """An experiment can be resumed when it has not ended and no live controller holds its lease (the
    controller takes the lease when it starts, so of two resumes that pass this check only one runs)."""
    experiment = storage.get_experiment(experiment_id)
    if experiment.state not in ("ACTIVE", "PAUSED"):
        raise ConfigError([Problem("experiment", f"experiment {experiment_id} has ended; only an ACTIVE or PAUSED "
                                   "experiment can be resumed", experiment.state)])
    lease = live_lease(storage, experiment_id)
    if lease is not None:
        raise ExperimentOwned(lease)


def controller_alive(storage: Storage, experiment_id: int) -> bool:
    """Whether a live controller (on any host) holds the experiment's lease."""
    return live_lease(storage, experiment_id) is not None


#: what `hpt experiment pause|activate|cancel` (and the dashboard's buttons) ask of an experiment
STATE_ACTIONS = {"pause": ExperimentState.PAUSED, "activate": ExperimentState.ACTIVE,
                 "cancel": ExperimentState.CANCELED}
_ENDED_TRIAL_STATES = {TrialState.COMPLETED, TrialState.CANCELED, TrialState.ERROR}


class ActionRefused(Exception):
    """The experiment is not in a state the action applies to."""


def change_state(storage: Storage, experiment_id: int, action: str) -> str:
    """Carry out `action` (pause, activate or cancel) through storage: the controller holding the experiment's
    lease, on whatever host, follows the state there; returns the new state.

    An experiment that has ended cannot change. Cancelling one that no controller runs takes its lease for the
    moment (so no controller starts meanwhile) and also cancels its trials that have not ended.
    """
    wanted = STATE_ACTIONS[action]
    experiment = storage.get_experiment(experiment_id)
    if experiment.state not in (ExperimentState.ACTIVE, ExperimentState.PAUSED):
        raise ActionRefused(f"experiment {experiment_id} has ended ({experiment.state}); only an ACTIVE or PAUSED "
                            f"experiment can {action}")
    if wanted is ExperimentState.CANCELED:
        try:
            with Lease(storage, experiment_id).held():
                _cancel_unfinished_trials(storage, experiment_id)
                storage.set_experiment_state(experiment_id, wanted.value)
                return wanted.value
        except ExperimentOwned:
            pass  # its controller ends the trials
    storage.set_experiment_state(experiment_id, wanted.value)
    return wanted.value


def _cancel_unfinished_trials(storage: Storage, experiment_id: int) -> None:
    for trial in storage.list_trials(experiment_id):
        if trial.state not in _ENDED_TRIAL_STATES:
            storage.update_trial(trial.id, state=TrialState.CANCELED.value, end_reason=EndReason.CANCELED)


def run_detached(storage: Storage, experiment_id: int) -> int:
    """Run the experiment's controller in the background (its output in `controller.log`); returns its pid."""
    directory = Path(storage.get_experiment(experiment_id).experiment_dir)
    with open_private(directory / "controller.log") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hpt_core.cli", "experiment", "resume", str(experiment_id), "--quiet"],
            env={**os.environ, "HPT_STORAGE": storage.url},  # not on the command line: it may hold a password
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return process.pid


def delete_experiment(storage: Storage, experiment_id: int) -> list[str]:
    """Remove the experiment's rows and the folders its records name (see `_delete_files_and_rows`), holding its
    lease meanwhile; returns the folders removed."""
    experiment = storage.get_experiment(experiment_id)
    try:
        with Lease(storage, experiment_id).held():
            return _delete_files_and_rows(storage, experiment)
    except ExperimentOwned as owned:
        raise ConfigError([Problem("experiment", f"experiment {experiment_id} is run by "
                                   f"{holder_description(owned.lease)}; cancel it first "
                                   f"(`hpt experiment cancel {experiment_id}`)", experiment.state)]) from None


def _delete_files_and_rows(storage: Storage, experiment: ExperimentRecord) -> list[str]:
    """Only what the experiment's own records name: its directory, its checkpoint root (keyed by its uuid, so no
    other experiment's), its notebook folder and each checkpoint it recorded elsewhere (an experiment from
    before uuids keeps them in a folder keyed by its id, which another storage's experiment may share); then
    its rows."""
    config = load_config(experiment.config)
    folders = [experiment.experiment_dir] if experiment.experiment_dir else []
    folders.append(checkpoint_root(config, experiment.experiment_dir or "", experiment.uuid))
    folders.extend(filter(None, [notebook_folder(config.entrypoint)]))
    folders.extend(checkpoint.path for checkpoint in storage.checkpoints(experiment_id=experiment.id,
                                                                         include_deleted=True))
    removed = []
    for folder in dict.fromkeys(folders):
        if checkpoint_storage.exists(folder):  # not when it was inside a folder removed before it
            checkpoint_storage.remove(folder)
            removed.append(folder)
    storage.delete_experiment(experiment.id)
    return removed


def notebook_folder(entrypoint: str | None) -> str | None:
    """The folder `hpt_core.notebook.run` wrote an experiment's trial function to (`$HPT_HOME/notebook/<uuid>`,
    the folder of the entrypoint's script), or None for an entrypoint it did not make.

    >>> notebook_folder(f"python {hpt_home() / 'notebook' / ('0' * 32) / 'hpt_trial_function.py'}") is not None
    True
    >>> notebook_folder("python train.py"), notebook_folder(None)
    (None, None)
    """
    try:
        script = Path(shlex.split(entrypoint or "")[-1])
    except (ValueError, IndexError):
        return None
    folder = script.parent
    if folder.parent == notebook_folders(hpt_home()) and re.fullmatch(r"[0-9a-f]{32}", folder.name):
        return str(folder)
    return None


def checkpoint_root(config: ExperimentConfig, directory: str, experiment_uuid: str) -> str:
    """Where trials save checkpoints: `checkpoint_storage.path/<experiment uuid>` (a folder or an fsspec URL, which
    experiments of other databases may share), or the experiment's directory."""
    path = config.checkpoint_storage.path
    if path:
        return checkpoint_storage.join(str(Path(path).expanduser()) if is_local_path(path) else path,
                                       experiment_uuid)
    return str(Path(directory) / "checkpoints")


def run_in_foreground(controller: Controller) -> str:
    """Run until the experiment ends; the first Ctrl-C cancels gracefully, trials checkpoint and exit."""
    if threading.current_thread() is not threading.main_thread():
        return controller.run()

    def cancel(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, previous)
        controller.request_cancel()

    previous = signal.signal(signal.SIGINT, cancel)
    try:
        return controller.run()
    finally:
        signal.signal(signal.SIGINT, previous)
