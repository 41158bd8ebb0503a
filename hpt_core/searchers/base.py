"""The search-method protocol: events in, operations out, state as plain JSON.

A search method is a pure state machine: no I/O, no threads, no clock. The controller feeds
it events and carries out the operations it returns. Subclass `SearchMethod` for your own
method (`searcher.name: custom`, `searcher.class: module:Class`)::

    class OneShot(SearchMethod):
        name = "one_shot"

        def initial_operations(self):
            request_id = self.new_request_id()
            return [Create(request_id, self.space.sample(self.rng)),
                    ValidateAfter(request_id, self.max_length)]

        def on_validation_completed(self, request_id, metric, length):
            return [Close(request_id)]

        def on_trial_closed(self, request_id):
            return [self.shutdown()]
"""

from __future__ import annotations

import abc
import math
from numbers import Real
from typing import Any, ClassVar, Mapping

import numpy as np

from hpt_core.config import SearcherConfig
from hpt_core.errors import SearcherError
from hpt_core.operations import ExitedReason, Operation, Shutdown
from hpt_core.space import Space


class SearchMethod(abc.ABC):
    """Base class of every search method, built-in or a user's own.

    Subclasses set `name` (as typed in `searcher.name`) and `config_model` (a `SearcherConfig`
    subclass with their own fields), and keep all of their state in JSON-friendly attributes
    listed by `state_dict()` / `load_state_dict()`; randomness comes only from `self.rng`.
    """

    name: ClassVar[str] = ""
    config_model: ClassVar[type[SearcherConfig]] = SearcherConfig
    extensible: ClassVar[bool] = False
    """Whether `extend()` can add trials (`hpt experiment continue`)."""

    def __init__(self, config: SearcherConfig, space: Space, seed: int = 0) -> None:
        self.config = config
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.next_request_id = 1
        self.exits: dict[str, str] = {}
        self.created: list[int] = []
        self.points_used = 0

    @classmethod
    def create(cls, config: SearcherConfig, space: Space, seed: int) -> "SearchMethod":
        """Build the method for an experiment (`searcher.name: custom` overrides this to load a class)."""
        return cls(config, space, seed)

    # --- events --------------------------------------------------------------------------------

    @abc.abstractmethod
    def initial_operations(self) -> list[Operation]:
        """The operations that start the search."""

    def on_trial_created(self, request_id: int) -> list[Operation]:
        """The controller has created the trial of a `Create` operation."""
        return []

    @abc.abstractmethod
    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        """The trial validated after training to `length`; `metric` is the searcher metric."""

    @abc.abstractmethod
    def on_trial_closed(self, request_id: int) -> list[Operation]:
        """The trial has ended (after a `Close`, or after an early exit)."""

    def on_trial_exited_early(self, request_id: int, reason: ExitedReason | str) -> list[Operation]:
        """The trial ended before it was closed; `reason` is an `ExitedReason`."""
        return []

    @abc.abstractmethod
    def progress(self) -> float:
        """How far the search has come, in [0, 1]."""

    def extend(self, additional_trials: int) -> list[Operation]:
        """Add trials to the search, even one that has shut down (`hpt experiment continue`).

        Methods that can grow set `extensible = True` and override this; the default refuses.
        """
        raise SearcherError(f"the {self.name} search method cannot be extended with more trials")

    # --- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the method is now, as plain JSON."""
        state = {key: value for key, value in vars(self).items() if key not in ("config", "space", "rng", "sampler")}
        state["rng"] = _rng_state_to_json(self.rng)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict()` returned."""
        for key, value in state.items():
            if key == "rng":
                self.rng.bit_generator.state = _rng_state_from_json(value)
            else:
                setattr(self, key, value)

    # --- helpers for subclasses ----------------------------------------------------------------

    @property
    def max_length(self) -> int:
        """`searcher.max_length` in its own units."""
        if self.config.max_length is None:
            raise SearcherError(f"searcher {self.name!r} needs searcher.max_length")
        return self.config.max_length.value

    def sample_hparams(self) -> dict[str, Any]:
        """The next configuration: `searcher.points_to_evaluate` first, in order (names they leave out
        sampled), then samples of the space."""
        points = self.config.points_to_evaluate or []
        if self.points_used < len(points):
            self.points_used += 1
            return self.space.complete(points[self.points_used - 1], self.rng)
        return self.propose_hparams()

    def propose_hparams(self) -> dict[str, Any]:
        """A new configuration once the chosen points are used up: a random sample of the space.

        `random` and `adaptive_asha` override it for `searcher.sampler` (see `searchers/tpe.py`).
        """
        return self.space.sample(self.rng)

    def new_request_id(self) -> int:
        request_id = self.next_request_id
        self.next_request_id += 1
        self.created.append(request_id)
        return request_id

    def loss(self, metric: Any) -> float:
        """The searcher metric as a value where smaller is better (negated if `smaller_is_better: false`)."""
        value = searcher_metric_value(metric, self.config.metric)
        return value if self.config.smaller_is_better else -value

    def record_exit(self, request_id: int, reason: ExitedReason | str) -> ExitedReason:
        """Remember how a trial ended, for the outcome rule of `shutdown()`."""
        reason = ExitedReason(reason)
        self.exits[str(request_id)] = reason.value
        return reason

    def shutdown(self) -> Shutdown:
        """Shutdown with failure only if every trial errored, cancel only if every trial was cancelled."""
        outcomes = [self.exits.get(str(request_id)) for request_id in self.created]
        every = bool(outcomes) and len(set(outcomes)) == 1
        return Shutdown(
            failure=every and outcomes[0] == ExitedReason.ERRORED.value,
            cancel=every and outcomes[0] == ExitedReason.USER_CANCELED.value,
        )


def searcher_metric_value(metric: Any, name: str) -> float:
    """The searcher metric as a float: `metric` is a number or the mapping of reported metrics."""
    if isinstance(metric, Mapping):
        if name not in metric:
            reported = ", ".join(sorted(map(str, metric))) or "none"
            raise SearcherError(f"the searcher metric {name!r} was not reported; reported metrics: {reported}")
        metric = metric[name]
    if isinstance(metric, bool) or not isinstance(metric, (Real, np.number)):
        raise SearcherError(f"the searcher metric {name!r} must be a number, got {metric!r}")
    value = float(metric)
    if math.isnan(value):
        raise SearcherError(f"the searcher metric {name!r} is NaN")
    return value


def _rng_state_to_json(rng: np.random.Generator) -> dict[str, Any]:
    return _stringify_ints(rng.bit_generator.state)


def _rng_state_from_json(state: Mapping[str, Any]) -> dict[str, Any]:
    return _parse_ints(dict(state))


def _stringify_ints(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _stringify_ints(item) for key, item in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _parse_ints(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _parse_ints(item) for key, item in value.items()}
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value
