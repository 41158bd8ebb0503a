"""The plugin manager: built-in parts and installed plugins, found through the same hooks."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
from pathlib import Path
from typing import Any, Iterator, Mapping

import pluggy

from hpt_core import hookspecs
from hpt_core.config import ExperimentConfig, PluginModels
from hpt_core.config import load_config as _load_config
from hpt_core.errors import ConfigError, Problem
from hpt_core.events import EventWorker, call_observers
from hpt_core.executors.local import LocalExecutor
from hpt_core.executors.ray import RayExecutor
from hpt_core.hookspecs import hookimpl
from hpt_core.loggers import Logger
from hpt_core.loggers.mlflow import MLflowLogger
from hpt_core.loggers.tensorboard import TensorBoardLogger
from hpt_core.searchers import adaptive_asha_view, pbt_view
from hpt_core.searchers.adaptive_asha import AdaptiveASHASearch
from hpt_core.searchers.base import SearchMethod
from hpt_core.searchers.custom import CustomSearch
from hpt_core.searchers.gp import GPSampler
from hpt_core.searchers.grid import GridSearch
from hpt_core.searchers.pbt import PBTSearch
from hpt_core.searchers.random import RandomSearch
from hpt_core.searchers.sampler import RandomSampler, Sampler
from hpt_core.searchers.single import SingleSearch
from hpt_core.searchers.tpe import ModelBasedSampling, TPESampler

ENTRY_POINT_GROUP = "hpt"
logger = logging.getLogger(__name__)


class BuiltinSearchMethods:
    """hpt's own search methods, registered like any plugin's."""

    @hookimpl
    def hpt_search_methods(self) -> list[type[SearchMethod]]:
        return [SingleSearch, GridSearch, RandomSearch, AdaptiveASHASearch, PBTSearch, CustomSearch]


class BuiltinSamplers:
    """hpt's own samplers (`searcher.sampler`): `random`, `tpe` and `gp`."""

    @hookimpl
    def hpt_samplers(self) -> list[type[Sampler]]:
        return [RandomSampler, TPESampler, GPSampler]


class BuiltinExecutors:
    """Where trials run out of the box: local processes, or a Ray cluster (`ray` imported only when used)."""

    @hookimpl
    def hpt_executors(self) -> list[type]:
        return [LocalExecutor, RayExecutor]


class BuiltinLoggers:
    """hpt's own loggers (TensorBoard, MLflow), each off unless an experiment file enables it."""

    @hookimpl
    def hpt_loggers(self) -> list[type[Logger]]:
        return [TensorBoardLogger, MLflowLogger]


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager: built-ins plus every entry point of group `hpt`."""
    manager = pluggy.PluginManager("hpt")
    manager.add_hookspecs(hookspecs)
    manager.register(BuiltinSearchMethods(), name="hpt-builtin-search-methods")
    manager.register(adaptive_asha_view, name="hpt-builtin-adaptive-asha-view")
    manager.register(pbt_view, name="hpt-builtin-pbt-view")
    manager.register(BuiltinSamplers(), name="hpt-builtin-samplers")
    manager.register(BuiltinExecutors(), name="hpt-builtin-executors")
    manager.register(BuiltinLoggers(), name="hpt-builtin-loggers")
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.get_plugin(entry_point.name) is not None:
            continue
        try:
            manager.register(entry_point.load(), name=entry_point.name)
        except Exception:  # a broken plugin must not take hpt down
            logger.exception("could not load the hpt plugin %r (%s)", entry_point.name, entry_point.value)
    return manager


def search_methods() -> dict[str, type[SearchMethod]]:
    """Every registered search method by name."""
    return _registry(get_plugin_manager().hook.hpt_search_methods(), "search method")


def samplers() -> dict[str, type[Sampler]]:
    """Every registered sampler by name."""
    return _registry(get_plugin_manager().hook.hpt_samplers(), "sampler")


def search_method_view(name: str, search: Any) -> dict[str, Any] | None:
    """The dashboard view data the plugin of search method `name` contributes, if any."""
    return get_plugin_manager().hook.hpt_search_method_view(name=name, search=search)


def executors() -> dict[str, type]:
    """Every registered executor by name."""
    return _registry(get_plugin_manager().hook.hpt_executors(), "executor")


def loggers() -> dict[str, type[Logger]]:
    """Every registered logger by name."""
    return _registry(get_plugin_manager().hook.hpt_loggers(), "logger")


def _registry(registered: list[list[Any]], kind: str) -> dict[str, Any]:
    by_name: dict[str, Any] = {}
    for classes in registered:
        for cls in classes:
            if cls.name in by_name and by_name[cls.name] is not cls:
                raise ConfigError(f"two plugins register the {kind} {cls.name!r}")
            by_name[cls.name] = cls
    return by_name


def plugin_models() -> PluginModels:
    """What the installed plugins let an experiment file name, with the models that validate their fields."""
    return PluginModels(
        search_methods={name: method.config_model for name, method in search_methods().items()},
        loggers={name: logger_class.options_model for name, logger_class in loggers().items()},
        executors={name: executor.options_model for name, executor in executors().items()},
        samplers=tuple(samplers()),
    )


def length_unit(config: Mapping[str, Any]) -> str:
    """The unit a stored experiment config's lengths count in, as its search method's config model says
    (`unit_length`); "batches" when the method is not installed or the section no longer validates."""
    section = config.get("searcher") or {}
    method = search_methods().get(section.get("name"))
    if method is None:
        return "batches"
    try:
        return method.config_model.model_for(section).model_validate(section).unit_length.unit
    except ValueError:
        return "batches"


def load_config(source: str | Path | Mapping[str, Any]) -> ExperimentConfig:
    """Read and validate an experiment file (a path, YAML text or a mapping)."""
    if isinstance(source, ExperimentConfig):
        return source
    return _load_config(source, plugin_models())


_event_workers: dict[int, EventWorker] = {}
"""The worker delivering each running experiment's events, by experiment id."""


@contextlib.contextmanager
def experiment_loggers(experiment_id: int, config: ExperimentConfig) -> Iterator[list[Logger]]:
    """For the time of the block: register the loggers the experiment file enables, and deliver the
    experiment's events (`notify`) on a worker thread; on leaving, every event notified is delivered first.

    A logger that cannot start (e.g. its extra is not installed) is logged and left out.
    """
    manager = get_plugin_manager()
    registered: list[Logger] = []
    for name, options in config.loggers.items():
        try:
            instance = loggers()[name](experiment_id, options)
            manager.register(instance, name=f"{name} logger of experiment {experiment_id}")
        except Exception:
            logger.exception("the hpt logger %r could not start; experiment %s goes on without it", name,
                             experiment_id)
            continue
        registered.append(instance)
    worker = _event_workers[experiment_id] = EventWorker(_deliver, f"hpt events of experiment {experiment_id}")
    try:
        yield registered
    finally:
        del _event_workers[experiment_id]
        worker.close()
        for instance in registered:
            manager.unregister(instance)


def create_searcher(config: ExperimentConfig | str | Path | Mapping[str, Any], seed: int | None = None) -> SearchMethod:
    """Build the search method an experiment config names, seeded by `seed` or the config's seed.

    >>> searcher = create_searcher({"searcher": {"name": "single", "metric": "loss", "max_length": 10},
    ...                             "hyperparameters": {"lr": 0.1}})
    >>> [type(operation).__name__ for operation in searcher.initial_operations()]
    ['Create', 'ValidateAfter']
    """
    config = load_config(config)
    if seed is None:
        seed = config.reproducibility.experiment_seed or 0
    method = search_methods().get(config.searcher.name)
    if method is None:
        raise ConfigError([Problem("searcher.name", "no search method of this name is registered",
                                   config.searcher.name)])
    searcher = method.create(config.searcher, config.space, seed)
    sampler = getattr(config.searcher, "sampler", None)
    if isinstance(searcher, ModelBasedSampling) and sampler is not None:
        searcher.use_sampler(samplers()[sampler](config.space))
    return searcher


def notify(hook_name: str, **kwargs: Any) -> None:
    """Tell the plugins of an event: queued for the experiment's worker while `experiment_loggers` runs it,
    else delivered at once. Implementations run in pluggy's order, inside the hook's wrappers; a failing
    one is logged, never raised, and never stops the others."""
    if not getattr(get_plugin_manager().hook, hook_name).get_hookimpls():
        return  # no plugin listens: nothing to queue, no thread to wake
    worker = _event_workers.get(kwargs.get("experiment_id"))
    if worker is None:
        _deliver(hook_name, kwargs)
    else:
        worker.put(hook_name, kwargs)


def _deliver(hook_name: str, kwargs: dict[str, Any]) -> None:
    call_observers(getattr(get_plugin_manager().hook, hook_name), kwargs)
