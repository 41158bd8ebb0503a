"""`searcher.name: custom` — a user's own search method, named by `searcher.class: module:Class`."""

from __future__ import annotations

import importlib
import inspect
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, StringConstraints

from hpt_core.config import SearcherConfig, parse_config
from hpt_core.errors import ConfigError, Problem
from hpt_core.hyperparameters import hyperparameters_to_dict
from hpt_core.searchers.base import SearchMethod
from hpt_core.space import Space

ALLOWED_CLASS = "'module:Class' naming an importable subclass of hpt_core.searchers.SearchMethod"


class CustomConfig(SearcherConfig):
    """`class` names the method; every other field is handed to it."""

    model_config = ConfigDict(extra="allow")

    class_path: Annotated[str, StringConstraints(pattern=r"^[\w.]+:[\w.]+$"), Field(alias="class")]


class CustomSearch(SearchMethod):
    """Loads the user's `SearchMethod` subclass named by `searcher.class` and builds it.

    The user's class gets every other searcher field. If it declares its own `config_model`
    (a `SearcherConfig` subclass), the fields are validated through that model, so that
    mistakes are reported like those of a built-in method (`searcher.<field>`); otherwise it
    gets the `CustomConfig`, extra fields included (`config.model_extra`).

    >>> from hpt_core import create_searcher
    >>> searcher = create_searcher({"searcher": {"name": "custom", "class": "hpt_core.searchers:RandomSearch",
    ...                                          "metric": "loss", "max_length": 4, "max_trials": 2},
    ...                             "hyperparameters": {"lr": 0.1}})
    >>> type(searcher).__name__, searcher.config.max_trials
    ('RandomSearch', 2)
    """

    name: ClassVar[str] = "custom"
    config_model: ClassVar[type[SearcherConfig]] = CustomConfig

    @classmethod
    def create(cls, config: CustomConfig, space: Space, seed: int) -> SearchMethod:
        method = _import_method(config.class_path)
        if method.config_model is SearcherConfig:
            return method(config, space, seed)
        return method(_validate_fields(method, config, space), space, seed)


def _import_method(class_path: str) -> type[SearchMethod]:
    module_name, _, qualified_name = class_path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as error:  # whatever the user's module raises on import is reported as such
        reason = f"cannot import module {module_name!r} ({type(error).__name__}: {error})"
        raise _class_error(class_path, reason) from error
    owner = module_name
    for attribute in qualified_name.split("."):
        if not hasattr(found, attribute):
            raise _class_error(class_path, f"{owner!r} has no attribute {attribute!r}")
        found, owner = getattr(found, attribute), f"{owner}.{attribute}"
    if not (inspect.isclass(found) and issubclass(found, SearchMethod)) or issubclass(found, CustomSearch):
        raise _class_error(class_path, f"{qualified_name} is not a search method")
    if inspect.isabstract(found):
        missing = ", ".join(sorted(found.__abstractmethods__))
        raise _class_error(class_path, f"{qualified_name} does not implement {missing}")
    if not (inspect.isclass(found.config_model) and issubclass(found.config_model, SearcherConfig)):
        raise _class_error(class_path, f"{qualified_name}.config_model must be a SearcherConfig subclass")
    return found


def _class_error(class_path: str, reason: str) -> ConfigError:
    return ConfigError([Problem("searcher.class", f"{reason}; allowed: {ALLOWED_CLASS}", class_path)])


def _validate_fields(method: type[SearchMethod], config: CustomConfig, space: Space) -> SearcherConfig:
    """The searcher fields (without `class`) validated by the method's own model, as in an experiment file."""
    fields = config.model_dump(by_alias=True, exclude={"class_path"}, exclude_unset=True)
    experiment = parse_config(
        {"searcher": fields, "hyperparameters": hyperparameters_to_dict(space.root)},
        {config.name: method.config_model},
    )
    return experiment.searcher
