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
from hpt_core.config import ExperimentConfig, LoggerOptions, SearcherConfig
from hpt_core.config import load_config as _load_config
from hpt_core.errors import ConfigError, Problem
from hpt_core.executors.local import LocalExecutor
from hpt_core.executors.ray import RayExecutor
from hpt_core.hookspecs import hookimpl
from hpt_core.loggers import Logger
from hpt_core.loggers.mlflow import MLflowLogger
from hpt_core.loggers.tensorboard import TensorBoardLogger
from hpt_core.searchers.adaptive_asha import AdaptiveASHASearch
from hpt_core.searchers.base import SearchMethod
from hpt_core.searchers.custom import CustomSearch
from hpt_core.searchers.grid import GridSearch
from hpt_core.searchers.pbt import PBTSearch
from hpt_core.searchers.random import RandomSearch
from hpt_core.searchers.single import SingleSearch

ENTRY_POINT_GROUP = "hpt"
logger = logging.getLogger(__name__)


class BuiltinSearchMethods:
    """hpt's own search methods, registered like any plugin's."""

    @hookimpl
    def hpt_search_methods(self) -> list[type[SearchMethod]]:
        return [SingleSearch, GridSearch, RandomSearch, AdaptiveASHASearch, PBTSearch, CustomSearch]


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


def search_method_configs() -> dict[str, type[SearcherConfig]]:
    return {name: method.config_model for name, method in search_methods().items()}


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


def logger_options_models() -> dict[str, type[LoggerOptions]]:
    return {name: logger_class.options_model for name, logger_class in loggers().items()}


def load_config(source: str | Path | Mapping[str, Any]) -> ExperimentConfig:
    """Read and validate an experiment file (a path, YAML text or a mapping)."""
    if isinstance(source, ExperimentConfig):
        return source
    return _load_config(source, search_method_configs(), logger_options_models())


@contextlib.contextmanager
def experiment_loggers(experiment_id: int, config: ExperimentConfig) -> Iterator[list[Logger]]:
    """Register the loggers the experiment file enables for the time of the block.

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
    try:
        yield registered
    finally:
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
    return method.create(config.searcher, config.space, seed)


def notify(hook_name: str, **kwargs: Any) -> None:
    """Call an event hook's implementations one by one; a failing one is logged, never raised."""
    hook = getattr(get_plugin_manager().hook, hook_name)
    for implementation in hook.get_hookimpls():
        try:
            implementation.function(**{name: kwargs[name] for name in implementation.argnames})
        except Exception:
            logger.exception("the hpt plugin %r failed in %s", implementation.plugin_name, hook_name)
