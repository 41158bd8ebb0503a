"""The experiment file: YAML in, a typed and validated `ExperimentConfig` out.

The shape follows Determined's experiment configuration. Every problem found is reported at
once in a `ConfigError`, each with its dotted path, the value given and what is allowed.
Search methods contribute the model of their own `searcher` fields (a `SearcherConfig`
subclass), so a plugin's method is validated like a built-in one.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import types
import typing
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from hpt_core.errors import ConfigError, Problem
from hpt_core.safe_yaml import load_yaml
from hpt_core.space import PATH_SEPARATOR, Categorical, Const, Double, Group, Int, Log, Node, Space

INT64_MAX = 2**63 - 1


def _whole_float_to_int(value: Any) -> Any:
    """A float without a fraction (e.g. `3.0` or `1e3`) is accepted where an int is expected."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= INT64_MAX:
        return int(value)
    return value


StrictInt = Annotated[int, BeforeValidator(_whole_float_to_int), Strict(), Field(ge=-INT64_MAX, le=INT64_MAX)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
StrictFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
StrictStr = Annotated[str, Strict()]
StrictBool = Annotated[bool, Strict()]
Fraction = Annotated[StrictFloat, Field(ge=0.0, le=1.0)]


class StrictModel(BaseModel):
    """Base of every config section: strict types, unknown fields are errors, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


LENGTH_UNITS = ("batches", "epochs", "records")


class Length(StrictModel):
    """A training length: `{batches|epochs|records: N}`, or a plain integer meaning batches."""

    batches: Optional[PositiveInt] = None
    epochs: Optional[PositiveInt] = None
    records: Optional[PositiveInt] = None

    @model_validator(mode="before")
    @classmethod
    def _plain_integer_is_batches(cls, data: Any) -> Any:
        data = _whole_float_to_int(data)
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


RAY_ADDRESS = re.compile(r"^(auto|ray://[^\s/:]+:\d+|[^\s/:]+:\d+)$")


def _ray_address(value: Any) -> Any:
    if isinstance(value, str) and not RAY_ADDRESS.match(value):
        raise ValueError("must be `auto` (the cluster this machine belongs to), `ray://HOST:PORT` (Ray Client) or "
                         "`HOST:PORT` (the head node's GCS address); leave it out to use or start Ray on this machine")
    return value


class ExecutorConfig(StrictModel):
    """Where trials run: `local` processes (the default) or a Ray cluster (`type: ray`, see docs/ray.md)."""

    type: Literal["local", "ray"] = "local"
    address: Optional[Annotated[StrictStr, AfterValidator(_ray_address)]] = None
    cpus_per_trial: Annotated[StrictFloat, Field(ge=0)] = 1.0
    custom_resources: dict[StrictStr, Annotated[StrictFloat, Field(gt=0)]] = Field(default_factory=dict)
    controller_host: Optional[StrictStr] = None

    @model_validator(mode="after")
    def _ray_fields_need_ray(self) -> "ExecutorConfig":
        defaults = ExecutorConfig.model_construct()
        given = [name for name in type(self).model_fields
                 if name != "type" and getattr(self, name) != getattr(defaults, name)]
        if self.type != "ray" and given:
            raise ValueError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to `type: ray`, "
                             f"but type is {self.type!r}")
        return self


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
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)


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


# --- hyperparameters -------------------------------------------------------------------------


class _ConstSpec(StrictModel):
    type: Literal["const"]
    val: Any
    default: Any = None


class _IntSpec(StrictModel):
    type: Literal["int"]
    minval: StrictInt
    maxval: StrictInt
    count: Optional[PositiveInt] = None
    default: Optional[StrictInt] = None


class _DoubleSpec(StrictModel):
    type: Literal["double"]
    minval: StrictFloat
    maxval: StrictFloat
    count: Optional[PositiveInt] = None
    default: Optional[StrictFloat] = None


class _LogSpec(StrictModel):
    type: Literal["log"]
    minval: StrictFloat
    maxval: StrictFloat
    base: Annotated[StrictFloat, Field(gt=0)] = 10.0
    count: Optional[PositiveInt] = None
    default: Optional[Annotated[StrictFloat, Field(gt=0)]] = None


class _CategoricalSpec(StrictModel):
    type: Literal["categorical"]
    vals: Annotated[list[Any], Strict(), Field(min_length=1)]
    default: Any = None


_HP_SPECS: dict[str, type[StrictModel]] = {
    "const": _ConstSpec,
    "int": _IntSpec,
    "double": _DoubleSpec,
    "log": _LogSpec,
    "categorical": _CategoricalSpec,
}


def space_from_dict(hyperparameters: Mapping[str, Any]) -> Space:
    """Build a `Space` from the `hyperparameters` section (raising `ConfigError` if invalid)."""
    problems: list[Problem] = []
    root = _parse_group(hyperparameters, "hyperparameters", problems)
    if problems:
        raise ConfigError(problems)
    return Space(root)


def _parse_group(data: Mapping[Any, Any], path: str, problems: list[Problem]) -> Group:
    children: dict[str, Node] = {}
    for name, value in data.items():
        child_path = f"{path}.{name}"
        if not isinstance(name, str) or not name:
            problems.append(Problem(child_path, "a hyperparameter name must be a non-empty string", name))
            continue
        if PATH_SEPARATOR in name:
            problems.append(Problem(child_path, f"a hyperparameter name must not contain {PATH_SEPARATOR!r}", name))
            continue
        node = _parse_node(value, child_path, problems)
        if node is not None:
            children[name] = node
    return Group(children)


def _parse_node(value: Any, path: str, problems: list[Problem]) -> Node | None:
    if not isinstance(value, Mapping):
        return Const(value)
    if "type" not in value:
        if not value:
            problems.append(Problem(path, "a nested group needs at least one hyperparameter", {}))
            return None
        return _parse_group(value, path, problems)
    kind = value["type"]
    if kind not in _HP_SPECS:
        problems.append(Problem(f"{path}.type", f"unknown hyperparameter type; allowed: {', '.join(_HP_SPECS)}"
                                + _did_you_mean(kind, _HP_SPECS), kind))
        return None
    before = len(problems)
    try:
        spec = _HP_SPECS[kind].model_validate(dict(value))
    except ValidationError as error:
        problems.extend(_problems_from_validation(error, path, _HP_SPECS[kind]))
        return None
    node = _build_hyperparameter(spec, path, problems)
    return node if len(problems) == before else None


def _build_hyperparameter(spec: StrictModel, path: str, problems: list[Problem]) -> Node | None:
    if isinstance(spec, _ConstSpec):
        if "default" in spec.model_fields_set and spec.default != spec.val:
            problems.append(Problem(f"{path}.default", f"a const's default must be its val {spec.val!r}", spec.default))
        return Const(spec.val)
    if isinstance(spec, _CategoricalSpec):
        has_default = "default" in spec.model_fields_set
        node = Categorical(spec.vals, spec.default, has_default)
        if has_default and not node.contains(spec.default):
            problems.append(Problem(f"{path}.default", f"the default must be one of vals {spec.vals}", spec.default))
        return node
    if not spec.minval < spec.maxval:
        problems.append(Problem(
            path, f"`minval < maxval` must hold, but got minval={spec.minval}, maxval={spec.maxval}"))
        return None
    if isinstance(spec, _IntSpec):
        node: Node = Int(spec.minval, spec.maxval, spec.count, spec.default)
    elif isinstance(spec, _DoubleSpec):
        node = Double(spec.minval, spec.maxval, spec.count, spec.default)
    else:
        node = _build_log(spec, path, problems)
        if node is None:
            return None
    if spec.default is not None and not node.contains(spec.default):
        low, high = (node.low, node.high) if isinstance(node, Log) else (node.minval, node.maxval)
        problems.append(Problem(f"{path}.default", f"the default must lie within [{low}, {high}]", spec.default))
    return node


def _build_log(spec: _LogSpec, path: str, problems: list[Problem]) -> Log | None:
    try:
        low, high = spec.base**spec.minval, spec.base**spec.maxval
    except OverflowError:
        low = high = math.inf
    if not (math.isfinite(low) and math.isfinite(high)):
        problems.append(Problem(path, f"base ** maxval must be a finite float, but got base={spec.base}, "
                                f"minval={spec.minval}, maxval={spec.maxval}"))
        return None
    return Log(spec.minval, spec.maxval, spec.base, spec.count, spec.default)


def hyperparameters_to_dict(group: Group) -> dict[str, Any]:
    """The normalised `hyperparameters` section (every hyperparameter typed, defaults filled in)."""
    normalised: dict[str, Any] = {}
    for name in sorted(group.children):
        node = group.children[name]
        if isinstance(node, Group):
            normalised[name] = hyperparameters_to_dict(node)
        elif isinstance(node, Const):
            normalised[name] = {"type": "const", "val": node.val}
        elif isinstance(node, Categorical):
            normalised[name] = {"type": "categorical", "vals": list(node.vals)}
            if node.has_default:
                normalised[name]["default"] = node.default
        else:
            fields = {"type": node.type, "minval": node.minval, "maxval": node.maxval}
            if isinstance(node, Log):
                fields["base"] = node.base
            fields.update({key: getattr(node, key) for key in ("count", "default") if getattr(node, key) is not None})
            normalised[name] = fields
    return normalised


# --- the whole file --------------------------------------------------------------------------


def parse_config(
    data: Any,
    search_methods: Mapping[str, type[SearcherConfig]],
    source: str | None = None,
    loggers: Mapping[str, type[LoggerOptions]] | None = None,
) -> ExperimentConfig:
    """Validate a parsed experiment file against the registered search methods' and loggers' models."""
    if not isinstance(data, Mapping):
        raise ConfigError([Problem("", "an experiment config must be a mapping of fields", type(data).__name__)],
                          source)
    data = dict(data)
    problems: list[Problem] = []
    searcher_data = data.pop("searcher", None)
    hyperparameters_data = data.pop("hyperparameters", {})
    loggers_data = data.pop("loggers", None)

    settings = _validate(ExperimentSettings, data, "", problems,
                         extra_allowed=("searcher", "hyperparameters", "loggers"))
    searcher = _parse_searcher(searcher_data, search_methods, problems)
    logger_options = _parse_loggers(loggers_data, loggers or {}, problems)
    space = None
    if not isinstance(hyperparameters_data, Mapping):
        problems.append(Problem("hyperparameters", "must be a mapping of names to hyperparameters",
                                hyperparameters_data))
    else:
        before = len(problems)
        root = _parse_group(hyperparameters_data, "hyperparameters", problems)
        if len(problems) == before:
            space = Space(root)
    if searcher is not None and space is not None:
        problems.extend(searcher.check_space(space))
    if problems:
        raise ConfigError(problems, source)
    config = ExperimentConfig.model_construct(
        _fields_set=settings.model_fields_set | {"searcher", "hyperparameters", "loggers"},
        **dict(settings),
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
            target[parts[-1]] = load_yaml(raw, f"--config {key}") if raw.strip() else ""
    if problems:
        raise ConfigError(problems, "--config")
    return result


def load_config(
    source: str | Path | Mapping[str, Any],
    search_methods: Mapping[str, type[SearcherConfig]],
    loggers: Mapping[str, type[LoggerOptions]] | None = None,
) -> ExperimentConfig:
    """Read an experiment file and validate it.

    `source` is a path, YAML text (a string with a line break, or a `{...}` flow mapping) or an
    already-parsed mapping.
    """
    if isinstance(source, Mapping):
        return parse_config(source, search_methods, loggers=loggers)
    if isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{")):
        return parse_config(load_yaml(source), search_methods, loggers=loggers)
    path = Path(source)
    return parse_config(load_yaml(path.read_bytes(), str(path)), search_methods, str(path), loggers)


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
            problems.append(Problem(f"loggers.{name}", f"unknown logger; allowed: {', '.join(sorted(loggers))}"
                                    + _did_you_mean(name, loggers), name))
            continue
        if options is not None and not isinstance(options, Mapping):
            problems.append(Problem(f"loggers.{name}", "must be a mapping of the logger's options, or empty", options))
            continue
        validated = _validate(model, options or {}, f"loggers.{name}", problems)
        if validated is not None:
            enabled[name] = validated
    return enabled


def _parse_searcher(
    data: Any, search_methods: Mapping[str, type[SearcherConfig]], problems: list[Problem]
) -> SearcherConfig | None:
    if data is None:
        problems.append(Problem("searcher", "required field is missing; it names the search method and its metric"))
        return None
    if not isinstance(data, Mapping):
        problems.append(Problem("searcher", "must be a mapping with at least `name` and `metric`", data))
        return None
    name = data.get("name")
    if name is None:
        problems.append(Problem("searcher.name", f"required field is missing; allowed: {', '.join(search_methods)}"))
        _validate(SearcherConfig, {**data, "name": ""}, "searcher", problems)
        return None
    model = search_methods.get(name) if isinstance(name, str) else None
    if model is None:
        problems.append(Problem("searcher.name", f"unknown search method; allowed: {', '.join(search_methods)}"
                                + _did_you_mean(name, search_methods), name))
        return None
    return _validate(model, data, "searcher", problems)


def _validate(
    model: type[StrictModel], data: Mapping[str, Any], path: str, problems: list[Problem],
    extra_allowed: tuple[str, ...] = (),
) -> Any:
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        problems.extend(_problems_from_validation(error, path, model, extra_allowed))
        return None


def _problems_from_validation(
    error: ValidationError, prefix: str, model: type[BaseModel], extra_allowed: tuple[str, ...] = ()
) -> list[Problem]:
    problems = []
    for detail in error.errors(include_url=False):
        location = [str(part) for part in detail["loc"] if not _is_validator_tag(part)]
        path = ".".join([prefix, *location] if prefix else location)
        kind = detail["type"]
        if kind == "extra_forbidden":
            allowed = sorted(set(_fields_at(model, location[:-1])) | set(extra_allowed if len(location) == 1 else ()))
            message = f"unknown field; allowed: {', '.join(allowed)}" + _did_you_mean(location[-1], allowed)
            problems.append(Problem(path, message))
        elif kind == "missing":
            problems.append(Problem(path, "required field is missing"))
        elif kind == "value_error":
            problems.append(Problem(path, str(detail["msg"]).removeprefix("Value error, "), detail.get("input")))
        else:
            problems.append(Problem(path, _allowed_message(detail), detail.get("input")))
    return problems


def _allowed_message(detail: Mapping[str, Any]) -> str:
    message = str(detail["msg"])
    replacements = {
        "Input should be a valid integer": "must be an integer (not a bool, string or float with a fraction)",
        "Input should be a valid number": "must be a number (not a bool or string)",
        "Input should be a finite number": "must be a finite number",
        "Input should be a valid string": "must be a string",
        "Input should be a valid boolean": "must be true or false",
        "Input should be a valid dictionary": "must be a mapping",
        "Input should be a valid list": "must be a list",
        "Input should be": "must be",
    }
    for before, after in replacements.items():
        if message.startswith(before):
            return after + message[len(before):]
    return message


def _is_validator_tag(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _fields_at(model: type[BaseModel], location: list[str]) -> list[str]:
    """Names of the fields allowed at `location` inside `model` (following nested models)."""
    current: Any = model
    for part in location:
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        current = _nested_model(current.model_fields[part].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _nested_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, Annotated):
        for argument in typing.get_args(annotation):
            found = _nested_model(argument)
            if found is not None:
                return found
    return None


def _did_you_mean(given: Any, allowed: Any) -> str:
    if not isinstance(given, str):
        return ""
    close = difflib.get_close_matches(given, list(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _drop_empty_lengths(data: Any) -> Any:
    if isinstance(data, dict):
        if set(data) == set(LENGTH_UNITS):
            return {key: value for key, value in data.items() if value is not None}
        return {key: _drop_empty_lengths(value) for key, value in data.items()}
    return data
