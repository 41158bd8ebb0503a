"""The `hyperparameters` section of an experiment file: parsed into a `Space`, and written back normalised.

Each hyperparameter is a mapping with a `type` (`const`, `int`, `double`, `log`, `categorical`)
validated by that type's spec; a mapping without `type` is a nested group (an empty one is a
constant `{}`); any other value is a constant. Problems name the dotted path, e.g. `hyperparameters.lr.minval`.

>>> space_from_dict({"lr": {"type": "log", "minval": -4, "maxval": -1}, "batch": 32}).defaults()
{'batch': 32, 'lr': 0.0031622776601683794}
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import Field, Strict, ValidationError

from hpt_core.errors import ConfigError, Problem
from hpt_core.habits import type_hint
from hpt_core.space import PATH_SEPARATOR, Categorical, Const, Double, Group, Int, Log, Node, Space
from hpt_core.validation import (
    PositiveInt,
    StrictFloat,
    StrictInt,
    StrictModel,
    did_you_mean,
    problems_from_validation,
)

SECTION = "hyperparameters"


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
    space = parse_space(hyperparameters, problems)
    if space is None:
        raise ConfigError(problems)
    return space


def parse_space(data: Any, problems: list[Problem]) -> Space | None:
    """The `hyperparameters` section as a `Space`, or None with what is wrong added to `problems`."""
    if not isinstance(data, Mapping):
        problems.append(Problem(SECTION, "must be a mapping of names to hyperparameters", data))
        return None
    before = len(problems)
    root = _parse_group(data, SECTION, problems)
    return Space(root) if len(problems) == before else None


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
        return Const(value) if _is_plain_data(value, path, problems) else None
    if not value:
        return Const({})  # an empty group reaches the trial as an empty mapping, as in Determined
    if "type" not in value:
        return _parse_group(value, path, problems)
    kind = value["type"]
    if not isinstance(kind, str) or kind not in _HP_SPECS:
        problems.append(Problem(f"{path}.type", f"unknown hyperparameter type; allowed: {', '.join(_HP_SPECS)}"
                                + (type_hint(kind) or did_you_mean(kind, _HP_SPECS)), kind))
        return None
    before = len(problems)
    try:
        spec = _HP_SPECS[kind].model_validate(dict(value))
    except ValidationError as error:
        problems.extend(problems_from_validation(error, path, _HP_SPECS[kind]))
        return None
    node = _build_hyperparameter(spec, path, problems)
    return node if len(problems) == before else None


def _build_hyperparameter(spec: StrictModel, path: str, problems: list[Problem]) -> Node | None:
    if isinstance(spec, (_ConstSpec, _CategoricalSpec)):
        return _build_choice(spec, path, problems)
    return _build_range(spec, path, problems)


def _build_choice(spec: _ConstSpec | _CategoricalSpec, path: str, problems: list[Problem]) -> Node | None:
    """A const or categorical: its values plain data, its default (if given) its val or one of its vals."""
    has_default = "default" in spec.model_fields_set
    values = {"val": spec.val} if isinstance(spec, _ConstSpec) else {"vals": spec.vals}
    if has_default:
        values["default"] = spec.default
    plain = [_is_plain_data(value, f"{path}.{field}", problems) for field, value in values.items()]
    if not all(plain):
        return None
    if isinstance(spec, _ConstSpec):
        if has_default and spec.default != spec.val:
            problems.append(Problem(f"{path}.default", f"a const's default must be its val {spec.val!r}", spec.default))
        return Const(spec.val)
    node = Categorical(spec.vals, spec.default, has_default)
    if has_default and not node.contains(spec.default):
        problems.append(Problem(f"{path}.default", f"the default must be one of vals {spec.vals}", spec.default))
    return node


def _build_range(spec: _IntSpec | _DoubleSpec | _LogSpec, path: str, problems: list[Problem]) -> Node | None:
    """An int, double or log: a non-empty range that floats can hold, a default inside it."""
    if not spec.minval < spec.maxval:
        problems.append(Problem(
            path, f"`minval < maxval` must hold, but got minval={spec.minval}, maxval={spec.maxval}"))
        return None
    if isinstance(spec, (_DoubleSpec, _LogSpec)) and not math.isfinite(spec.maxval - spec.minval):
        problems.append(Problem(path, "`maxval - minval` must be a finite float (about 1.8e308 at most), "
                                f"but got minval={spec.minval}, maxval={spec.maxval}"))
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
    """The range is base ** minval to base ** maxval: both must be positive finite floats.

    The problem names `base` if the file gives it, else the exponent whose power is out of range.
    """
    for field in ("minval", "maxval"):
        exponent = getattr(spec, field)
        try:
            power = spec.base**exponent
        except OverflowError:
            power = math.inf
        if not 0 < power < math.inf:
            culprit = "base" if "base" in spec.model_fields_set else field
            problems.append(Problem(f"{path}.{culprit}", f"`base ** {field}` must be a positive finite float, but got "
                                    f"base={spec.base}, {field}={exponent} (base ** {field} = {power})"))
            return None
    return Log(spec.minval, spec.maxval, spec.base, spec.count, spec.default)


def _is_plain_data(value: Any, path: str, problems: list[Problem]) -> bool:
    """Whether `value` is JSON-like data (null, bool, number, string, lists, mappings with string keys).

    Hyperparameter values are stored and handed to trials as JSON; a problem names the first item that is not.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain_data(item, f"{path}.{index}", problems) for index, item in enumerate(value))
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(Problem(f"{path}.{key}", "keys of a mapping value must be strings", key))
                return False
            if not _is_plain_data(item, f"{path}.{key}", problems):
                return False
        return True
    problems.append(Problem(path, "must be plain data: null, true/false, a number, a string, or a list or "
                            "mapping of those", value))
    return False


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
