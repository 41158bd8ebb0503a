"""Every extension point of hpt, in one file.

A plugin is any object or module with functions named like the hooks below, marked with
`hpt_core.hookimpl`, and installed under the entry-point group `hpt`::

    # pyproject.toml of your plugin
    [project.entry-points.hpt]
    my_plugin = "my_package.hpt_plugin"

hpt's own search methods, samplers, executors, loggers and dashboard views register through the
same hooks, and are chosen by name the same way. Registry hooks return what they add; event hooks
observe an experiment and return nothing. Event hooks are called in pluggy's order (`tryfirst`,
`trylast`, wrappers), off the trials' report path (`hpt_core.events`); one that raises is logged
with the plugin's name and stops neither the others nor the experiment.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("hpt")
hookimpl = pluggy.HookimplMarker("hpt")

# --- registries ----------------------------------------------------------------------------------


@hookspec
def hpt_search_methods() -> list[type]:
    """Return search-method classes (`hpt_core.searchers.SearchMethod` subclasses) to register, each named by
    its `name` (as in `searcher.name`).

    A class's `config_model` (a `hpt_core.config.SearcherConfig` subclass) validates its
    `searcher` fields; two plugins registering one name is an error.
    """


@hookspec(firstresult=True)
def hpt_search_method_view(name: str, search: Any) -> dict[str, Any] | None:
    """The dashboard's own view of the search method `name` (e.g. ASHA's rungs): a JSON-able mapping shown
    beside the trials, or None for a method you do not register.

    `search` reads the experiment: `search.trials()` (each with `id`, `request_id`,
    `parent_request_id`, `state`, `end_reason`), `search.searcher_state()` (the method's latest
    `state_dict()`), `search.hparams()` and `search.best_validations()` (by trial id).
    """


@hookspec
def hpt_samplers() -> list[type]:
    """Return sampler classes (`hpt_core.searchers.Sampler` subclasses) to register, each named by its `name`
    (as in `searcher.sampler`)."""


@hookspec
def hpt_executors() -> list[type]:
    """Return executor classes (`hpt_core.executors.base.Executor` subclasses) to register, each named by its
    `name` (as in `executor.type`); a class's `options_model` validates the rest of the `executor` section."""


@hookspec
def hpt_loggers() -> list[type]:
    """Return logger classes (`hpt_core.loggers.Logger` subclasses) to register, each named by its `name`
    (as under `loggers:`).

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
