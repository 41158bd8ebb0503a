"""Every extension point of hpt, in one file.

A plugin is any object or module with functions named like the hooks below, marked with
`hpt_core.hookimpl`, and installed under the entry-point group `hpt`::

    # pyproject.toml of your plugin
    [project.entry-points.hpt]
    my_plugin = "my_package.hpt_plugin"

hpt's own search methods register through the same hooks. Registry hooks return what they
add; event hooks observe an experiment and return nothing. An event hook that raises is
logged with the plugin's name and never stops the experiment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from hpt_core.loggers import Logger
    from hpt_core.searchers.base import SearchMethod

hookspec = pluggy.HookspecMarker("hpt")
hookimpl = pluggy.HookimplMarker("hpt")

# --- registries ----------------------------------------------------------------------------------


@hookspec
def hpt_search_methods() -> list[type[SearchMethod]]:
    """Return search-method classes to register, each named by its `name` (as in `searcher.name`).

    A class's `config_model` (a `hpt_core.config.SearcherConfig` subclass) validates its
    `searcher` fields; two plugins registering one name is an error.
    """


@hookspec
def hpt_executors() -> list[type]:
    """Return executor classes to register, each named by its `name` (as in `executor.type`)."""


@hookspec
def hpt_loggers() -> list[type[Logger]]:
    """Return logger classes to register, each named by its `name` (as under `loggers:`).

    A class's `options_model` (a `hpt_core.config.LoggerOptions` subclass) validates its options
    in the experiment file. A logger is off unless the experiment file names it; then one
    instance, made with `(experiment_id, options)`, is registered for the experiment's run and
    observes it through the event hooks below. Two plugins registering one name is an error.
    """


# --- events --------------------------------------------------------------------------------------


@hookspec
def hpt_experiment_started(experiment_id: int, config: Any, experiment_dir: str) -> None:
    """An experiment has started (or resumed) with this validated `ExperimentConfig`.

    `experiment_dir` is the experiment's own folder (`$HPT_HOME/experiments/<experiment uuid>`).
    """


@hookspec
def hpt_experiment_ended(experiment_id: int, state: str) -> None:
    """An experiment has ended in `state` (COMPLETED, CANCELED or ERROR)."""


@hookspec
def hpt_trial_started(experiment_id: int, trial_id: int, request_id: int, hparams: dict[str, Any]) -> None:
    """A trial's process has started (again, after a restart or a promotion)."""


@hookspec
def hpt_trial_ended(experiment_id: int, trial_id: int, state: str, reason: str) -> None:
    """A trial has ended in `state` (COMPLETED, CANCELED or ERROR) for `reason`."""


@hookspec
def hpt_metrics_reported(
    experiment_id: int, trial_id: int, kind: str, metrics: dict[str, Any], batches: int, epochs: int
) -> None:
    """A trial reported `metrics`; `kind` is "training" or "validation"."""


@hookspec
def hpt_checkpoint_saved(experiment_id: int, trial_id: int, checkpoint_id: str, metadata: dict[str, Any]) -> None:
    """A trial has finished saving a checkpoint (it is registered and can be restored)."""
