"""The experiment file: YAML in, a typed and validated `ExperimentConfig` out.

The shape follows Determined's experiment configuration. Every problem found is reported at
once in a `ConfigError`, each with its dotted path, the value given and what is allowed.
Search methods contribute the model of their own `searcher` fields (a `SearcherConfig`
subclass), so a plugin's method is validated like a built-in one. The `hyperparameters`
section is parsed by `hpt_core.hyperparameters`; the field types plugins use in their own models
(`PositiveInt`, `StrictFloat`, ...) are defined in `hpt_core.validation` and offered here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Collection, Literal, Mapping, Optional

from pydantic import BeforeValidator, ConfigDict, Field, SerializeAsAny, model_validator

from hpt_core.errors import ConfigError, Problem
from hpt_core.hyperparameters import hyperparameters_to_dict, parse_space, space_from_dict
from hpt_core.space import PATH_SEPARATOR, Space
from hpt_core.validation import (
    Fraction,
    NonNegativeInt,
    PositiveInt,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictModel,
    StrictStr,
    did_you_mean,
    validate,
    whole_float_to_int,
)

__all__ = [
    "ExecutorOptions", "ExperimentConfig", "ExperimentSettings", "Fraction", "Length", "LoggerOptions",
    "NonNegativeInt", "PluginModels", "PositiveInt", "SearcherConfig", "StrictBool", "StrictFloat", "StrictInt",
    "StrictModel", "StrictStr", "apply_overrides", "load_config", "parse_config",
]


LENGTH_UNITS = ("batches", "epochs", "records")


class Length(StrictModel):
    """A training length: `{batches|epochs|records: N}`, or a plain integer meaning batches."""

    batches: Optional[PositiveInt] = None
    epochs: Optional[PositiveInt] = None
    records: Optional[PositiveInt] = None

    @model_validator(mode="before")
    @classmethod
    def _plain_integer_is_batches(cls, data: Any) -> Any:
        data = whole_float_to_int(data)
        if isinstance(data, int) and not isinstance(data, bool):
            return {"batches": data}
        return data

    @model_validator(mode="after")
    def _exactly_one_unit(self) -> "Length":
        given = [unit for unit in LENGTH_UNITS if getattr(self, unit) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(LENGTH_UNITS)} (e.g. {{epochs: 10}}), got {given or 'none'}")
        return self

    @property
    def unit(self) -> str:
        return next(unit for unit in LENGTH_UNITS if getattr(self, unit) is not None)

    @property
    def value(self) -> int:
        return int(getattr(self, self.unit))

    def __str__(self) -> str:
        return f"{self.value} {self.unit}"


class SearcherConfig(StrictModel):
    """Fields every search method shares; each method subclasses it with its own fields."""

    name: StrictStr
    metric: StrictStr
    smaller_is_better: StrictBool = True
    max_length: Optional[Length] = None
    max_trials: Optional[PositiveInt] = None
    max_concurrent_trials: NonNegativeInt = 16
    source_trial_id: Optional[NonNegativeInt] = None
    source_checkpoint: Optional[StrictStr] = None
    points_to_evaluate: Optional[list[dict[StrictStr, Any]]] = None

    @property
    def unit_length(self) -> Length:
        """The length whose unit the method's `ValidateAfter` lengths count in (`max_length` by default)."""
        return self.max_length or Length(batches=1)

    @property
    def longest_length(self) -> Optional[Length]:
        """The most training any one trial may be asked for, or None when the method does not say."""
        return self.max_length

    @classmethod
    def model_for(cls, fields: Mapping[str, Any]) -> type[SearcherConfig]:
        """The model that validates these `searcher` fields: this one, unless a field chooses it
        (`name: custom` takes the `config_model` of the class named in `class`); a `ConfigError` if none fits."""
        return cls

    def check_space(self, space: Space) -> list[Problem]:
        """Problems with the hyperparameters that only this search method cares about (subclasses extend it)."""
        return [
            Problem(f"searcher.points_to_evaluate.{index}.{name}", message, value)
            for index, point in enumerate(self.points_to_evaluate or [])
            for name, message, value in space.point_problems(point)
        ]


class LoggerOptions(StrictModel):
    """The options of one logger (`loggers.<name>` in the experiment file); each logger subclasses it."""


def _variables_from_list(value: Any) -> Any:
    """Determined's `["NAME=value", ...]` form of environment variables."""
    if isinstance(value, list) and all(isinstance(item, str) and "=" in item for item in value):
        return dict(item.split("=", 1) for item in value)
    return value


class EnvironmentConfig(StrictModel):
    variables: Annotated[dict[StrictStr, StrictStr], BeforeValidator(_variables_from_list)] = Field(
        default_factory=dict
    )


class ReproducibilityConfig(StrictModel):
    experiment_seed: Optional[Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]] = None


class CheckpointStorageConfig(StrictModel):
    path: Optional[StrictStr] = None
    save_experiment_best: NonNegativeInt = 0
    save_trial_best: NonNegativeInt = 1
    save_trial_latest: NonNegativeInt = 1


class ResourcesConfig(StrictModel):
    slots_per_trial: NonNegativeInt = 1


class ExecutorOptions(StrictModel):
    """The `executor` section: `type` names the executor (`local` by default); each executor's `options_model`
    subclasses this with its own fields."""

    type: StrictStr = "local"


class ExperimentSettings(StrictModel):
    """The experiment file's fields other than `searcher` and `hyperparameters`."""

    name: Optional[StrictStr] = None
    description: StrictStr = ""
    entrypoint: Optional[StrictStr] = None
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    max_restarts: NonNegativeInt = 5
    max_trial_time: Optional[Annotated[StrictFloat, Field(gt=0)]] = None
    max_time: Optional[Annotated[StrictFloat, Field(gt=0)]] = None
    reproducibility: ReproducibilityConfig = Field(default_factory=ReproducibilityConfig)
    min_validation_period: Optional[Length] = None
    min_checkpoint_period: Optional[Length] = None
    records_per_epoch: Optional[PositiveInt] = None
    checkpoint_policy: Literal["best", "all", "none"] = "best"
    checkpoint_storage: CheckpointStorageConfig = Field(default_factory=CheckpointStorageConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    executor: SerializeAsAny[ExecutorOptions] = Field(default_factory=ExecutorOptions)


class ExperimentConfig(ExperimentSettings):
    """A validated experiment file. `space` is the hyperparameter search space."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: SearcherConfig
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    loggers: dict[str, LoggerOptions] = Field(default_factory=dict)

    @cached_property
    def space(self) -> Space:
        return space_from_dict(self.hyperparameters)

    def to_dict(self) -> dict[str, Any]:
        """The normalised config with every default filled in (plain YAML/JSON types)."""
        data = self.model_dump(mode="json", by_alias=True, exclude={"searcher", "hyperparameters", "loggers"})
        data["searcher"] = self.searcher.model_dump(mode="json", by_alias=True)
        data["hyperparameters"] = self.hyperparameters
        data["loggers"] = {name: options.model_dump(mode="json", by_alias=True)
                           for name, options in self.loggers.items()}
        return _drop_empty_lengths(data)


# --- the whole file --------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginModels:
    """What the installed plugins let an experiment file name: each search method's and logger's config model,
    each executor's options model, and the sampler names (`searcher.sampler`)."""

    search_methods: Mapping[str, type[SearcherConfig]]
    loggers: Mapping[str, type[LoggerOptions]] = field(default_factory=dict)
    executors: Mapping[str, type[ExecutorOptions]] = field(default_factory=lambda: {"local": ExecutorOptions})
    samplers: Collection[str] = ("random",)


def parse_config(data: Any, plugins: PluginModels, source: str | None = None) -> ExperimentConfig:
    """Validate a parsed experiment file against the installed plugins' models."""
    if not isinstance(data, Mapping):
        raise ConfigError([Problem("", "an experiment config must be a mapping of fields", type(data).__name__)],
                          source)
    data = dict(data)
    problems: list[Problem] = []
    searcher_data = data.pop("searcher", None)
    hyperparameters_data = data.pop("hyperparameters", {})
    loggers_data = data.pop("loggers", None)
    executor_data = data.pop("executor", None)

    settings = validate(ExperimentSettings, data, "", problems,
                        extra_allowed=("searcher", "hyperparameters", "loggers", "executor"))
    searcher = _parse_searcher(searcher_data, plugins, problems)
    logger_options = _parse_loggers(loggers_data, plugins.loggers, problems)
    executor = _parse_executor(executor_data, plugins.executors, problems)
    space = parse_space(hyperparameters_data, problems)
    if searcher is not None and space is not None:
        problems.extend(searcher.check_space(space))
    if problems:
        raise ConfigError(problems, source)
    config = ExperimentConfig.model_construct(
        _fields_set=settings.model_fields_set | {"searcher", "hyperparameters", "loggers", "executor"},
        **{**dict(settings), "executor": executor},
        searcher=searcher,
        hyperparameters=hyperparameters_to_dict(space.root),
        loggers=logger_options,
    )
    config.__dict__["space"] = space
    return config


def apply_overrides(data: Mapping[str, Any], assignments: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` assignments (a dotted KEY, a YAML VALUE) applied over a parsed experiment file.

    >>> apply_overrides({"searcher": {"max_trials": 4}}, ["searcher.max_trials=8", "hyperparameters.lr=1e-3"])
    {'searcher': {'max_trials': 8}, 'hyperparameters': {'lr': 0.001}}
    """
    result = json.loads(json.dumps(dict(data)))
    problems = []
    for assignment in assignments:
        key, equals, raw = assignment.partition("=")
        parts = key.strip().split(PATH_SEPARATOR)
        if not equals or not all(parts):
            problems.append(Problem("--config", "must be KEY=VALUE with a dotted KEY, e.g. searcher.max_trials=8",
                                    assignment))
            continue
        target = result
        for depth, part in enumerate(parts[:-1]):
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                problems.append(Problem(".".join(parts[: depth + 1]), "is not a mapping, so it has no fields to set",
                                        target))
                break
        else:
            target[parts[-1]] = _load_yaml(raw, f"--config {key}") if raw.strip() else ""
    if problems:
        raise ConfigError(problems, "--config")
    return result


def load_config(source: str | Path | Mapping[str, Any], plugins: PluginModels) -> ExperimentConfig:
    """Read an experiment file and validate it.

    `source` is a path, YAML text (a string with a line break, or a `{...}` flow mapping) or an
    already-parsed mapping.
    """
    if isinstance(source, Mapping):
        return parse_config(source, plugins)
    if isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{")):
        return parse_config(_load_yaml(source), plugins)
    path = Path(source)
    return parse_config(_load_yaml(path.read_bytes(), str(path)), plugins, str(path))


def _load_yaml(content: str | bytes, source: str = "<string>") -> Any:
    """`safe_yaml.load_yaml`, imported when a YAML text is read (a config given as a mapping needs no YAML)."""
    from hpt_core.safe_yaml import load_yaml

    return load_yaml(content, source)


def _parse_executor(
    data: Any, executors: Mapping[str, type[ExecutorOptions]], problems: list[Problem]
) -> ExecutorOptions:
    """`executor: {type: NAME, ...}`: NAME a registered executor (`local` by default), the rest its options."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.append(Problem("executor", "must be a mapping with `type` and the executor's options, "
                                "e.g. {type: local}", data))
        return ExecutorOptions()
    name = data.get("type", "local")
    model = executors.get(name) if isinstance(name, str) else None
    if model is None:
        problems.append(Problem("executor.type", f"unknown executor; installed: {', '.join(sorted(executors))}"
                                + did_you_mean(name, executors), name))
        return ExecutorOptions()
    return validate(model, data, "executor", problems) or ExecutorOptions()


def _parse_loggers(
    data: Any, loggers: Mapping[str, type[LoggerOptions]], problems: list[Problem]
) -> dict[str, LoggerOptions]:
    """`loggers: {name: options}`: each name a registered logger, its options (none = defaults) validated by it."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        problems.append(Problem("loggers", "must be a mapping of logger names to their options, "
                                "e.g. {tensorboard: {}}", data))
        return {}
    enabled: dict[str, LoggerOptions] = {}
    for name, options in data.items():
        model = loggers.get(name) if isinstance(name, str) else None
        if model is None:
            problems.append(Problem(f"loggers.{name}", f"unknown logger; installed: {', '.join(sorted(loggers))}"
                                    + did_you_mean(name, loggers), name))
            continue
        if options is not None and not isinstance(options, Mapping):
            problems.append(Problem(f"loggers.{name}", "must be a mapping of the logger's options, or empty", options))
            continue
        validated = validate(model, options or {}, f"loggers.{name}", problems)
        if validated is not None:
            enabled[name] = validated
    return enabled


def _parse_searcher(data: Any, plugins: PluginModels, problems: list[Problem]) -> SearcherConfig | None:
    search_methods = plugins.search_methods
    if data is None:
        problems.append(Problem("searcher", "required field is missing; it names the search method and its metric"))
        return None
    if not isinstance(data, Mapping):
        problems.append(Problem("searcher", "must be a mapping with at least `name` and `metric`", data))
        return None
    name = data.get("name")
    if name is None:
        problems.append(Problem("searcher.name", f"required field is missing; allowed: {', '.join(search_methods)}"))
        validate(SearcherConfig, {**data, "name": ""}, "searcher", problems)
        return None
    model = search_methods.get(name) if isinstance(name, str) else None
    if model is None:
        problems.append(Problem("searcher.name", f"unknown search method; installed: {', '.join(search_methods)}"
                                + did_you_mean(name, search_methods), name))
        return None
    try:
        model = model.model_for(data)
    except ConfigError as error:
        problems.extend(error.problems)
        return None
    searcher = validate(model, data, "searcher", problems)
    sampler = getattr(searcher, "sampler", None)
    if sampler is not None and sampler not in plugins.samplers:
        installed = ", ".join(sorted(plugins.samplers))
        problems.append(Problem("searcher.sampler", f"unknown sampler; installed: {installed}"
                                + did_you_mean(sampler, plugins.samplers), sampler))
    return searcher


def _drop_empty_lengths(data: Any) -> Any:
    if isinstance(data, dict):
        if set(data) == set(LENGTH_UNITS):
            return {key: value for key, value in data.items() if value is not None}
        return {key: _drop_empty_lengths(value) for key, value in data.items()}
    return data
