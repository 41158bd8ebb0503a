"""Hyperparameter types and the search space: sample, grid, perturb, defaults, flatten.

Names are always visited in sorted order (nested groups included), so that one seed
reproduces one run exactly.

>>> import numpy as np
>>> space = Space({"lr": Log(-4, -1), "layers": Int(1, 4, count=4), "act": Categorical(["relu", "tanh"])})
>>> sorted(space.sample(np.random.default_rng(0)))
['act', 'layers', 'lr']
>>> len(space.grid())
8
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Union

import numpy as np

from hpt_core.errors import PATH_SEPARATOR


def round_half_away(value: float) -> int:
    """Round to the nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _linspace(low: float, high: float, count: int) -> list[float]:
    if count == 1:
        return [(low + high) / 2]
    step = (high - low) / (count - 1)
    return [low + i * step if i < count - 1 else high for i in range(count)]


@dataclass(frozen=True)
class Const:
    """A fixed value."""

    val: Any
    type = "const"

    def sample(self, rng: np.random.Generator) -> Any:
        return self.val

    def grid(self) -> list[Any]:
        return [self.val]

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        return value

    def default_value(self) -> Any:
        return self.val

    def contains(self, value: Any) -> bool:
        return value == self.val


@dataclass(frozen=True)
class Int:
    """An integer, uniform over [minval, maxval] with both ends included."""

    minval: int
    maxval: int
    count: int | None = None
    default: int | None = None
    type = "int"

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.minval, self.maxval, endpoint=True))

    def grid(self) -> list[int]:
        return [round_half_away(point) for point in _linspace(self.minval, self.maxval, grid_length(self))]

    def perturb(self, value: int, factor: float, rng: np.random.Generator) -> int:
        if rng.random() < 0.5:
            moved = math.floor(value * (1 - factor))
        else:
            moved = math.ceil(value * (1 + factor))
        return int(min(max(moved, self.minval), self.maxval))

    def default_value(self) -> int:
        if self.default is not None:
            return self.default
        return round_half_away((self.minval + self.maxval) / 2)

    def contains(self, value: Any) -> bool:
        return _is_int(value) and self.minval <= value <= self.maxval


@dataclass(frozen=True)
class Double:
    """A float, uniform in [minval, maxval)."""

    minval: float
    maxval: float
    count: int | None = None
    default: float | None = None
    type = "double"

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.minval, self.maxval))

    def grid(self) -> list[float]:
        return [float(point) for point in _linspace(self.minval, self.maxval, self.count or 1)]

    def perturb(self, value: float, factor: float, rng: np.random.Generator) -> float:
        moved = value * (1 - factor) if rng.random() < 0.5 else value * (1 + factor)
        return float(min(max(moved, self.minval), self.maxval))

    def default_value(self) -> float:
        if self.default is not None:
            return float(self.default)
        return (self.minval + self.maxval) / 2

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.minval <= value <= self.maxval


@dataclass(frozen=True)
class Log:
    """A float base ** x with the exponent x uniform in [minval, maxval)."""

    minval: float
    maxval: float
    base: float = 10.0
    count: int | None = None
    default: float | None = None
    type = "log"

    @property
    def low(self) -> float:
        return float(self.base**self.minval)

    @property
    def high(self) -> float:
        return float(self.base**self.maxval)

    def sample(self, rng: np.random.Generator) -> float:
        return float(self.base ** rng.uniform(self.minval, self.maxval))

    def grid(self) -> list[float]:
        exponents = _linspace(self.minval, self.maxval, self.count or 1)
        return [float(self.base**exponent) for exponent in exponents]

    def perturb(self, value: float, factor: float, rng: np.random.Generator) -> float:
        moved = value * (1 - factor) if rng.random() < 0.5 else value * (1 + factor)
        low, high = sorted((self.low, self.high))
        return float(min(max(moved, low), high))

    def default_value(self) -> float:
        if self.default is not None:
            return float(self.default)
        return float(self.base ** ((self.minval + self.maxval) / 2))

    def contains(self, value: Any) -> bool:
        low, high = sorted((self.low, self.high))
        return _is_number(value) and low * (1 - 1e-12) <= value <= high * (1 + 1e-12)


@dataclass(frozen=True)
class Categorical:
    """One of a list of values, each equally likely."""

    vals: tuple[Any, ...]
    default: Any = None
    has_default: bool = False
    type = "categorical"

    def __init__(self, vals: Any, default: Any = None, has_default: bool | None = None) -> None:
        object.__setattr__(self, "vals", tuple(vals))
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "has_default", default is not None if has_default is None else has_default)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.vals[int(rng.integers(len(self.vals)))]

    def grid(self) -> list[Any]:
        return list(self.vals)

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        return value

    def default_value(self) -> Any:
        return self.default if self.has_default else self.vals[0]

    def contains(self, value: Any) -> bool:
        return any(_same_value(value, choice) for choice in self.vals)


Hyperparameter = Union[Const, Int, Double, Log, Categorical]


def grid_length(hp: Hyperparameter) -> int:
    """How many values `hp.grid()` has (an int's count stops at the integers in its range)."""
    if isinstance(hp, Int):
        return min(hp.count or 1, hp.maxval - hp.minval + 1)
    if isinstance(hp, (Double, Log)):
        return hp.count or 1
    return len(hp.grid())
Node = Union[Hyperparameter, "Group"]


@dataclass(frozen=True)
class Group:
    """A nested group of hyperparameters (a mapping without `type` in the experiment file)."""

    children: Mapping[str, Node] = field(default_factory=dict)
    type = "group"


class Space:
    """A search space: named hyperparameters and nested groups."""

    def __init__(self, hyperparameters: Mapping[str, Node] | Group | None = None) -> None:
        if isinstance(hyperparameters, Group):
            hyperparameters = hyperparameters.children
        self.root = _as_node(dict(hyperparameters or {}))

    def __repr__(self) -> str:
        return f"Space({dict(self.root.children)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.leaves() == other.leaves()

    def leaves(self) -> list[tuple[tuple[str, ...], Hyperparameter]]:
        """Every typed hyperparameter with its path, in sorted (path-tuple) order."""
        return list(_walk(self.root, ()))

    @property
    def names(self) -> list[str]:
        """Dotted names of every hyperparameter, in visiting order."""
        return [PATH_SEPARATOR.join(path) for path, _ in self.leaves()]

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw one configuration (nested like the space)."""
        return _unflatten((path, hp.sample(rng)) for path, hp in self.leaves())

    def defaults(self) -> dict[str, Any]:
        """The values used when a script runs outside an experiment."""
        return _unflatten((path, hp.default_value()) for path, hp in self.leaves())

    def grid(self) -> list[dict[str, Any]]:
        """Every grid point: the Cartesian product, row-major over sorted names."""
        leaves = self.leaves()
        axes = [hp.grid() for _, hp in leaves]
        return [_unflatten(zip((path for path, _ in leaves), point)) for point in itertools.product(*axes)]

    def grid_size(self) -> int:
        """How many points `grid()` has, counted without making them."""
        return math.prod(grid_length(hp) for _, hp in self.leaves())

    def perturb(
        self,
        hparams: Mapping[str, Any],
        rng: np.random.Generator,
        resample_probability: float,
        perturb_factor: float,
    ) -> dict[str, Any]:
        """PBT's explore step: resample each hyperparameter (a group as a whole) or perturb it."""
        return _perturb_group(self.root, hparams, rng, resample_probability, perturb_factor)

    def point_problems(self, point: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
        """What is wrong with a full or partial assignment (nested, or with dotted names): (name, problem, value)."""
        leaves = {PATH_SEPARATOR.join(path): hp for path, hp in self.leaves()}
        groups = {PATH_SEPARATOR.join(path[:depth]) for path in map(tuple, (p for p, _ in self.leaves()))
                  for depth in range(1, len(path))}
        problems = []
        for name, value in flatten(nest(point)).items():
            if name in leaves:
                if not leaves[name].contains(value):
                    problems.append((name, f"not a value of this {leaves[name].type} hyperparameter", value))
            elif name in groups:
                problems.append((name, "is a group of hyperparameters; give its members", value))
            else:
                problems.append((name, f"no such hyperparameter; known: {', '.join(leaves)}", value))
        return problems

    def complete(self, point: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """A full configuration: `point`'s values, and samples for the names it leaves out."""
        given = flatten(nest(point))
        sampled = flatten(self.sample(rng))
        return _unflatten((tuple(name.split(PATH_SEPARATOR)), given.get(name, value)) for name, value in sampled.items())

    def contains(self, hparams: Mapping[str, Any]) -> bool:
        """Whether a nested configuration names exactly this space's hyperparameters, each in range."""
        flat = flatten(hparams)
        paths = {PATH_SEPARATOR.join(path): hp for path, hp in self.leaves()}
        return flat.keys() == paths.keys() and all(paths[name].contains(value) for name, value in flat.items())


def _as_node(value: Any) -> Node:
    """Typed hyperparameters stay as they are; a mapping becomes a group and anything else a constant."""
    if isinstance(value, Group):
        return Group({name: _as_node(child) for name, child in value.children.items()})
    if isinstance(value, (Const, Int, Double, Log, Categorical)):
        return value
    if isinstance(value, Mapping):
        return Group({name: _as_node(child) for name, child in value.items()})
    return Const(value)


def nest(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted names (`{"optimizer.lr": 0.1}`) -> nested mappings; nested input is kept as it is."""
    return _unflatten((tuple(name.split(PATH_SEPARATOR)), value) for name, value in flatten(hparams).items())


def flatten(hparams: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested hyperparameters -> {"group.name": value}, for tables and plots."""
    flat: dict[str, Any] = {}
    for name in sorted(hparams):
        value = hparams[name]
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, key + PATH_SEPARATOR))
        else:
            flat[key] = value
    return flat


def _walk(group: Group, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Hyperparameter]]:
    for name in sorted(group.children):
        node = group.children[name]
        if isinstance(node, Group):
            yield from _walk(node, prefix + (name,))
        else:
            yield prefix + (name,), node


def _unflatten(items: Any) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for path, value in items:
        target = nested
        for name in path[:-1]:
            target = target.setdefault(name, {})
        target[path[-1]] = value
    return nested


def _perturb_group(
    group: Group, hparams: Mapping[str, Any], rng: np.random.Generator, resample_probability: float, factor: float
) -> dict[str, Any]:
    perturbed: dict[str, Any] = {}
    for name in sorted(group.children):
        node = group.children[name]
        if isinstance(node, Const):
            perturbed[name] = node.val
        elif rng.random() < resample_probability:
            perturbed[name] = Space(node).sample(rng) if isinstance(node, Group) else node.sample(rng)
        elif isinstance(node, Group):
            perturbed[name] = _perturb_group(node, hparams[name], rng, resample_probability, factor)
        else:
            perturbed[name] = node.perturb(hparams[name], factor, rng)
    return perturbed


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _same_value(left: Any, right: Any) -> bool:
    return type(left) is type(right) and left == right or (_is_number(left) and _is_number(right) and left == right)
