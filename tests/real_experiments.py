"""Real experiments of a test trial script, for the tests: write the experiment, create it, run it, read it back.

An `ExperimentFolder` is a folder the experiments of a test run in:

- `home/`: their HPT_HOME, holding the default SQLite storage `home/hpt.db` (unless `storage_url` is given);
- `trial-log.jsonl`: the log the test trial scripts append a JSON line to for each thing they do (its path
  reaches them as the variable TRIAL_LOG);
- `NAME.yaml`: experiment files written by `write_file`.

`folder.run(searcher, hyperparameters, **fields)` creates and runs an experiment in the test's process
(`create_experiment`, `build_controller`, `controller.run()`) and returns an `ExperimentRun` to read it
back; `folder.hpt(...)` and `folder.start_hpt(...)` run the `hpt` command on the folder's storage instead.
Every experiment file runs `python SCRIPT` in the folder's model directory, with `val_loss` as the searcher
metric unless the searcher names one, the folder's `defaults` unless the test gives those fields, and the
trial's variables (TRIAL_LOG, the folder's `variables`, the call's `variables`) in `environment.variables`,
so that trials see them on a Ray node as on this machine:

>>> folder = ExperimentFolder(Path("/tmp/x"), variables={"EPOCH_SECONDS": "0.1"}, defaults={"max_restarts": 2})
>>> experiment = folder.experiment({"name": "single", "max_length": 1}, {"quality": 1.0}, seed=1)
>>> experiment["searcher"], experiment["max_restarts"], experiment["reproducibility"]
({'metric': 'val_loss', 'name': 'single', 'max_length': 1}, 2, {'experiment_seed': 1})
>>> experiment["environment"]["variables"]
{'TRIAL_LOG': '/tmp/x/trial-log.jsonl', 'EPOCH_SECONDS': '0.1'}
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

import hpt_core
from hpt_core.runner import build_controller, create_experiment
from hpt_core.storage import Storage

#: the model directory of the plain-Python trial (tests/runtime/model/trial.py) that most folders run
RUNTIME_MODEL = Path(__file__).parent / "runtime" / "model"


@dataclass
class ExperimentFolder:
    """A folder to run real experiments of one trial script in (see the module's docstring for its layout)."""

    path: Path
    model_dir: Path = RUNTIME_MODEL
    script: str = "trial.py"
    variables: Mapping[str, str] = field(default_factory=dict)
    """environment variables of every trial, besides TRIAL_LOG"""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """fields of every experiment file unless the test gives them (e.g. `max_restarts`)"""
    storage_url: str = ""
    """the experiments' storage; empty: hpt's default, SQLite in `home/hpt.db`"""

    def __post_init__(self) -> None:
        self.storage_url = self.storage_url or self._default_storage_url

    @property
    def home(self) -> Path:
        return self.path / "home"

    @property
    def trial_log(self) -> Path:
        return self.path / "trial-log.jsonl"

    @property
    def _default_storage_url(self) -> str:
        return f"sqlite:///{self.home}/hpt.db"

    def experiment(self, searcher: Mapping[str, Any], hyperparameters: Mapping[str, Any], /, *,
                   seed: int | None = None, variables: Mapping[str, str] | None = None,
                   **fields: Any) -> dict[str, Any]:
        """The content of an experiment file (`seed`: `reproducibility.experiment_seed`)."""
        content: dict[str, Any] = {
            "entrypoint": f"{sys.executable} {self.script}",
            "searcher": {"metric": "val_loss", **searcher},
            "hyperparameters": dict(hyperparameters),
            "environment": {"variables": {"TRIAL_LOG": str(self.trial_log), **self.variables, **(variables or {})}},
            **self.defaults,
            **fields,
        }
        if seed is not None:
            content["reproducibility"] = {"experiment_seed": seed}
        return content

    def write_file(self, file_name: str, searcher: Mapping[str, Any], hyperparameters: Mapping[str, Any], /, *,
                   directory: Path | None = None, **fields: Any) -> Path:
        """Write `experiment(...)` to `FILE_NAME.yaml` in this folder (or in `directory`); returns its path."""
        path = (directory or self.path) / f"{file_name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.experiment(searcher, hyperparameters, **fields), allow_unicode=True))
        return path

    def create(self, searcher: Mapping[str, Any], hyperparameters: Mapping[str, Any], /, *,
               model_dir: Path | None = None, **fields: Any) -> int:
        """Create (not run) an experiment in this folder's storage; returns its id."""
        config = hpt_core.load_config(self.experiment(searcher, hyperparameters, **fields))
        with self.storage() as storage, pytest.MonkeyPatch.context() as patch:
            patch.setenv("HPT_HOME", str(self.home))
            return create_experiment(config, model_dir or self.model_dir, storage)

    def run(self, searcher: Mapping[str, Any], hyperparameters: Mapping[str, Any], /, *,
            on_tick: Callable[[Any], None] | None = None, move_model_dir_away: bool = False,
            **fields: Any) -> ExperimentRun:
        """Create an experiment and run it to its end in this process.

        `on_tick(controller)` is called on every turn of the controller's loop. With `move_model_dir_away`
        the experiment runs a copy of the model directory (`model/` in this folder) that is renamed once the
        controller is built (so trials on Ray can only run the code that Ray shipped).
        """
        model_dir = self.model_dir
        if move_model_dir_away:
            model_dir = Path(shutil.copytree(self.model_dir, self.path / "model"))
        experiment_id = self.create(searcher, hyperparameters, model_dir=model_dir, **fields)
        storage = self.storage()
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HPT_HOME", str(self.home))
            controller = build_controller(storage, experiment_id, on_tick=on_tick)
            if move_model_dir_away:
                model_dir.rename(self.path / "model-moved-away")
            state = controller.run()
        return ExperimentRun(self, storage, experiment_id, state, model_dir)

    def storage(self) -> Storage:
        """A new Storage on this folder's experiments (close it after use); makes `home/` if need be."""
        self.home.mkdir(parents=True, exist_ok=True)
        return Storage(self.storage_url)

    def log(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The trial log's entries (all trials of all experiments here), those of `event` with these fields."""
        entries = [json.loads(line) for line in self.trial_log.read_text().splitlines()] \
            if self.trial_log.exists() else []
        return [entry for entry in entries if (event is None or entry["event"] == event)
                and all(entry.get(name) == value for name, value in fields.items())]

    def environment(self, variables: Mapping[str, str] | None = None) -> dict[str, str]:
        """The `hpt` command's environment: this process's, with HPT_HOME, the storage and `variables`.

        HPT_STORAGE is set only for a storage other than hpt's default (`home/hpt.db`, whose folder hpt makes
        when it first opens it); it is never inherited from this process.
        """
        environment = {**os.environ, "HPT_HOME": str(self.home), "COLUMNS": "80", **(variables or {})}
        environment.pop("HPT_STORAGE", None)
        if self.storage_url != self._default_storage_url:
            environment["HPT_STORAGE"] = self.storage_url
        return environment

    def hpt(self, *args: str, variables: Mapping[str, str] | None = None, timeout: float = 300,
            **run_options: Any) -> subprocess.CompletedProcess[str]:
        """Run the `hpt` command on this folder's storage to its end, capturing its output as text."""
        return subprocess.run([sys.executable, "-m", "hpt_core.cli", *args], env=self.environment(variables),
                              capture_output=True, text=True, timeout=timeout, **run_options)

    def start_hpt(self, *args: str, variables: Mapping[str, str] | None = None,
                  **popen_options: Any) -> subprocess.Popen[str]:
        """Start the `hpt` command on this folder's storage (text output; `stdout=...` etc. as for Popen)."""
        return subprocess.Popen([sys.executable, "-m", "hpt_core.cli", *args], env=self.environment(variables),
                                text=True, **popen_options)


@dataclass
class ExperimentRun:
    """An experiment `ExperimentFolder.run` ran to its end: its storage (open), id, final state and model directory."""

    folder: ExperimentFolder
    storage: Storage
    experiment_id: int
    state: str
    model_dir: Path

    @property
    def storage_url(self) -> str:
        return self.folder.storage_url

    def trials(self) -> list[Any]:
        return self.storage.list_trials(self.experiment_id)

    def trial(self, **hparams: Any) -> Any:
        """The one trial whose hyperparameters have these values."""
        (trial,) = [t for t in self.trials() if all(t.hparams.get(name) == value for name, value in hparams.items())]
        return trial

    def metrics(self, trial: Any, kind: str) -> list[Any]:
        """The trial's reports of one kind (`training` or `validation`), oldest first."""
        return self.storage.metrics(trial_id=trial.id, kind=kind)

    def searcher_events(self) -> list[dict[str, Any]]:
        """The events the search method was fed, as recorded (`{"name": ..., "args": [...]}`)."""
        return [record.payload for record in self.storage.searcher_records(self.experiment_id)
                if record.kind == "event"]

    def log(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The folder's trial log (see `ExperimentFolder.log`)."""
        return self.folder.log(event, **fields)

    def trial_output(self, trial_id: int) -> str:
        """What the trial printed, every attempt (its `output.log`)."""
        directory = self.storage.get_experiment(self.experiment_id).experiment_dir
        return (Path(directory) / "trials" / str(trial_id) / "output.log").read_text()

    def hpt(self, *args: str, **options: Any) -> subprocess.CompletedProcess[str]:
        """Run the `hpt` command on this experiment's storage (see `ExperimentFolder.hpt`)."""
        return self.folder.hpt(*args, **options)


def hold_until_preloaded(controller: Any, timeout: float = 240.0) -> None:
    """An `on_tick`: hold the controller while a preloaded interpreter of its local executor is still importing,
    so that the next trial it launches can start warm (`LocalExecutor.preloading`)."""
    deadline = time.monotonic() + timeout
    while controller.executor.preloading():
        assert time.monotonic() < deadline, controller.executor.warm_start_state()
        time.sleep(0.05)
