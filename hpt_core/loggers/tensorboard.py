"""The `tensorboard` logger: one TensorBoard run per trial, read by TensorBoard's HParams view.

Enable it in the experiment file (it needs the `tensorboard` extra)::

    loggers:
      tensorboard: {}              # or {path: ./tb}

Event files go to `<experiment dir>/tensorboard`, or to `<path>/<experiment uuid>` when `path`
is given (relative to the directory hpt runs in; the uuid is the experiment folder's name, which
`hpt experiment describe` shows, so experiments of different storages sharing a `path` never mix). Each trial is the run `trial_<id>`: its
hyperparameters (nested names dotted) and its end status for the HParams view, and its metrics
as scalars in `trial_<id>/training` and `trial_<id>/validation`, at step = batches. View them
with `tensorboard --logdir DIR`.

Events are appended to the trial's event file as they happen and the file is closed at once, so
TensorBoard sees them while the experiment runs and no file stays open for a paused trial.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from pathlib import Path
from typing import Any, Optional

from hpt_core.config import LoggerOptions, StrictStr
from hpt_core.loggers import Logger, MissingExtra, hookimpl, numeric_metrics
from hpt_core.space import flatten

END_STATUS = {"COMPLETED": "STATUS_SUCCESS", "CANCELED": "STATUS_ABORTED", "ERROR": "STATUS_FAILURE"}


class TensorBoardOptions(LoggerOptions):
    """`loggers.tensorboard`: `path` holds one folder per experiment (default: the experiment's folder)."""

    path: Optional[StrictStr] = None


class TensorBoardLogger(Logger):
    """Writes each trial's hyperparameters and metrics as TensorBoard event files."""

    name = "tensorboard"
    options_model = TensorBoardOptions

    def __init__(self, experiment_id: int, options: TensorBoardOptions) -> None:
        super().__init__(experiment_id, options)
        if importlib.util.find_spec("tensorboard") is None:
            raise MissingExtra(self.name, "tensorboard", "tensorboard")
        self.logdir: Path | None = None
        self._event_files: dict[str, _EventFile] = {}
        self._started: set[int] = set()

    @hookimpl
    def hpt_experiment_started(self, experiment_id: int, config: Any, experiment_dir: str) -> None:
        if not self.observes(experiment_id):
            return
        if self.options.path:
            self.logdir = Path(self.options.path).expanduser() / Path(experiment_dir).name
        else:
            self.logdir = Path(experiment_dir) / "tensorboard"

    @hookimpl
    def hpt_trial_started(self, experiment_id: int, trial_id: int, request_id: int, hparams: dict[str, Any]) -> None:
        if not self.observes(experiment_id) or trial_id in self._started:
            return
        from tensorboard.plugins.hparams import plugin_data_pb2

        start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for name, value in flatten(hparams).items():
            _set_hparam_value(start.hparams[name], value)
        self._write(_trial_run(trial_id), [_hparams_value("session_start_info", start)])
        self._started.add(trial_id)

    @hookimpl
    def hpt_metrics_reported(
        self, experiment_id: int, trial_id: int, kind: str, metrics: dict[str, Any], batches: int, epochs: int
    ) -> None:
        if not self.observes(experiment_id):
            return
        from tensorboard.compat.proto import summary_pb2

        values = [summary_pb2.Summary.Value(tag=name, simple_value=value)
                  for name, value in numeric_metrics(metrics).items()]
        if values:
            self._write(f"{_trial_run(trial_id)}/{kind}", values, step=batches)

    @hookimpl
    def hpt_trial_ended(self, experiment_id: int, trial_id: int, state: str, reason: str) -> None:
        if not self.observes(experiment_id):
            return
        from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

        end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(END_STATUS.get(state, "STATUS_UNKNOWN")),
                                             end_time_secs=time.time())
        self._write(_trial_run(trial_id), [_hparams_value("session_end_info", end)])

    def _write(self, run: str, values: list[Any], step: int = 0) -> None:
        if self.logdir is None:
            raise RuntimeError("the tensorboard logger got an event before hpt_experiment_started")
        if run not in self._event_files:
            self._event_files[run] = _EventFile.create(self.logdir / run)
        self._event_files[run].append_summary(values, step)


class _EventFile:
    """One TensorBoard event file, appended to and closed again for every event."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, directory: Path) -> "_EventFile":
        from tensorboard.compat.proto import event_pb2

        directory.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}.hpt"
        event_file = cls(directory / name)
        event_file._append(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        return event_file

    def append_summary(self, values: list[Any], step: int) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._append(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)))

    def _append(self, event: Any) -> None:
        from tensorboard.summary.writer.record_writer import RecordWriter

        with open(self.path, "ab") as handle:
            RecordWriter(handle).write(event.SerializeToString())


def _trial_run(trial_id: int) -> str:
    return f"trial_{trial_id}"


def _hparams_value(kind: str, info: Any) -> Any:
    """A summary value carrying the HParams plugin's session start or end info, as TensorBoard writes it."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData(**{kind: info})
    tag = metadata.SESSION_START_INFO_TAG if kind == "session_start_info" else metadata.SESSION_END_INFO_TAG
    return summary_pb2.Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data),
                                     tensor=metadata.NULL_TENSOR)


def _set_hparam_value(field: Any, value: Any) -> None:
    """Numbers, strings and bools as themselves; anything else (None, a list) as its text."""
    if isinstance(value, bool):
        field.bool_value = value
    elif isinstance(value, (int, float)):
        field.number_value = value
    else:
        field.string_value = str(value)
