"""`searcher.name: custom` — a user's own search method, named by `searcher.class: module:Class`."""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from typing import Annotated, Any, ClassVar, Mapping

from pydantic import Field

from hpt_core.config import SearcherConfig, StrictStr
from hpt_core.errors import ConfigError, Problem
from hpt_core.searchers.base import SearchMethod
from hpt_core.space import Space

ALLOWED_CLASS = "'module:Class' naming an importable subclass of hpt_core.searchers.SearchMethod"
CLASS_PATH = re.compile(r"^[\w.]+:[\w.]+$")


class CustomConfig(SearcherConfig):
    """`class` names the search method; its `config_model` declares every other field it takes.

    Validating an experiment file imports the class, so that a field the class does not declare
    (a misspelt `smaller_is_better`, say) is refused like one of a built-in method.
    """

    class_path: Annotated[StrictStr, Field(alias="class")]

    @classmethod
    def model_for(cls, fields: Mapping[str, Any]) -> type[SearcherConfig]:
        class_path = fields.get("class")
        if class_path is None:
            raise ConfigError([Problem("searcher.class", f"required field is missing; allowed: {ALLOWED_CLASS}")])
        if not isinstance(class_path, str) or not CLASS_PATH.match(class_path):
            raise _class_error(class_path, "not written 'module:Class'")
        return _config_model_of(_import_method(class_path))


class CustomSearch(SearchMethod):
    """Loads the user's `SearchMethod` subclass named by `searcher.class` and builds it.

    The searcher fields were validated by the class's own `config_model` (with `class` added), so
    mistakes are reported like those of a built-in method (`searcher.<field>`); a class that keeps
    the base `SearcherConfig` takes only the fields every method shares.

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
        return _import_method(config.class_path)(config, space, seed)


@functools.cache
def _config_model_of(method: type[SearchMethod]) -> type[CustomConfig]:
    """The model of `searcher` for `name: custom` naming `method`: its `config_model` with `class` added."""
    model = method.config_model
    if issubclass(CustomConfig, model):
        return CustomConfig
    return type(f"Custom{model.__name__}", (model, CustomConfig), {"__module__": __name__, "__doc__": model.__doc__})


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


def _class_error(class_path: Any, reason: str) -> ConfigError:
    return ConfigError([Problem("searcher.class", f"{reason}; allowed: {ALLOWED_CLASS}", class_path)])
