"""Loggers: plugins on the event hooks that copy an experiment's trials and metrics to another tool.

hpt's own loggers are `tensorboard` (`hpt_core.loggers.tensorboard`) and `mlflow`
(`hpt_core.loggers.mlflow`). Every logger is off unless the experiment file names it::

    loggers:
      tensorboard: {path: ./tb}
      mlflow: {tracking_uri: "sqlite:///mlflow.db"}

A logger is a `Logger` subclass with a `name` (its key under `loggers`), an `options_model` (a
`hpt_core.config.LoggerOptions` subclass that validates its options) and the event hooks of
`hpt_core.hookspecs` it needs, marked with `hookimpl`. It is registered through the
`hpt_loggers` hook; for an experiment that enables it, hpt makes one instance and registers it
with the plugin manager while the experiment runs. An error inside a logger is logged and never
stops the experiment.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from hpt_core.config import LoggerOptions
from hpt_core.hookspecs import hookimpl

__all__ = ["Logger", "LoggerOptions", "MissingExtra", "hookimpl", "numeric_metrics"]


class MissingExtra(ImportError):
    """A logger's library is not installed; the message names the extra that installs it."""

    def __init__(self, logger_name: str, module: str, extra: str) -> None:
        super().__init__(f"the {logger_name} logger needs {module}: pip install -e '.[{extra}]' in hpt's checkout")


class Logger:
    """Base of a logger: made for one experiment, given that experiment's validated options.

    The event hooks are called for every experiment that runs in the process, so each hook a
    subclass implements starts with `if not self.observes(experiment_id): return`.
    """

    name: ClassVar[str]
    options_model: ClassVar[type[LoggerOptions]] = LoggerOptions

    def __init__(self, experiment_id: int, options: LoggerOptions) -> None:
        self.experiment_id = experiment_id
        self.options = options

    def observes(self, experiment_id: int) -> bool:
        """Whether an event of `experiment_id` is for this logger."""
        return experiment_id == self.experiment_id


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics whose values are numbers, as floats (bools, strings and lists are left out)."""
    return {name: float(value) for name, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}
