"""`searcher.sampler: tpe` — new trials' hyperparameters from a multi-fidelity tree-structured Parzen estimator.

What a search method with `sampler: tpe` knows about its trials is a plain-JSON dict (its
`sampler_history`, part of `state_dict()`): each trial's hyperparameters encoded as numbers,
its results per length, whether it had invalid hyperparameters and whether it has ended. The
model is rebuilt from it at every proposal, so restoring the state restores the model:

1. with probability `RANDOM_SHARE`, or while no length holds enough results, a random sample;
2. otherwise the model is fitted on every length that holds at least
   max(hyperparameters + 1, `MIN_RESULTS`) results (with adaptive ASHA's `fidelity: adaptive`:
   `FIRST_MODEL_RESULTS`, on no rung that fails to predict the next; `searchers/fidelity.py`):
   at each, the best `GOOD_SHARE` of its results (at least one, at most `MAX_GOOD`) are good, the
   rest bad; the longest length's weigh 1 in all, each shorter one's `LOWER_RUNG_WEIGHT` of the
   next longer one's (short runs inform the model, long ones decide it); every trial with invalid
   hyperparameters and every trial still running without a result are bad too (so parallel
   proposals spread out);
3. `CANDIDATES` configurations are drawn from the good density; the one with the largest
   good/bad density ratio that no trial has tried yet is proposed (in a small discrete space,
   the best one even if tried).

Numeric hyperparameters are modelled on [0, 1]: `int` over [minval - 0.5, maxval + 0.5] (rounded
back), `double` over its range, `log` over its exponents; `categorical` by choice index; `const`
and nesting are carried through as they are.

>>> from hpt_core import create_searcher
>>> from hpt_core.searchers import Create
>>> searcher = create_searcher({"searcher": {"name": "random", "metric": "loss", "max_length": 1,
...                                          "max_trials": 40, "max_concurrent_trials": 1, "sampler": "tpe"},
...                             "hyperparameters": {"x": {"type": "double", "minval": 0, "maxval": 1}}})
>>> proposals, operations = [], searcher.initial_operations()
>>> while isinstance(operations[0], Create):
...     trial = operations[0]
...     proposals.append(trial.hparams["x"])
...     closing = searcher.on_validation_completed(trial.request_id, {"loss": (proposals[-1] - 0.3) ** 2}, 1)
...     operations = searcher.on_trial_closed(trial.request_id)
>>> near_optimum = sum(abs(x - 0.3) < 0.1 for x in proposals[20:])  # random sampling: 4 of 20 on average
>>> len(proposals), near_optimum >= 8
(40, True)
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from hpt_core.operations import ExitedReason
from hpt_core.searchers.history_index import HistoryIndex
from hpt_core.searchers.parzen import ParzenEstimator
from hpt_core.searchers.sampler import RandomSampler, Sampler
from hpt_core.space import Categorical, Const, Int, Log, Space, round_half_away

RANDOM_SHARE = 0.1
"""The share of proposals that are random samples, so that the search keeps exploring."""
MIN_RESULTS = 10
"""A length's results feed the model once there are this many (and more than the hyperparameters)."""
GOOD_SHARE = 0.15
MAX_GOOD = 25
MAX_BAD_RESULTS = 1000
"""Above this many bad results (over all lengths, shared as their weights are) the bad density keeps an even sample
of them in rank order (every k-th), so that a proposal stays fast with 10,000 results."""
CANDIDATES = 32
LOWER_RUNG_WEIGHT = 0.25
"""The model is fitted on every length with enough results, each weighing this much of the next longer one's."""


def new_history() -> dict[str, Any]:
    """The empty plain-JSON record of a model-based sampler."""
    return {"configs": {}, "results": {}, "invalid": [], "ended": {}}


class SpaceEncoding:
    """A space's non-constant hyperparameters as numbers: numeric ones on [0, 1], categorical ones by index."""

    def __init__(self, space: Space) -> None:
        leaves = [(path, hp) for path, hp in space.leaves() if not isinstance(hp, Const)]
        self.numeric = [(path, hp) for path, hp in leaves if not isinstance(hp, Categorical)]
        self.categorical = [(path, hp) for path, hp in leaves if isinstance(hp, Categorical)]
        self.constants = [(path, hp.val) for path, hp in space.leaves() if isinstance(hp, Const)]

    @property
    def dimensions(self) -> int:
        return len(self.numeric) + len(self.categorical)

    def encode(self, hparams: dict[str, Any]) -> list[float]:
        """Numeric dimensions (in [0, 1]) first, then categorical indices."""
        numeric = [_to_unit(hp, _value_at(hparams, path)) for path, hp in self.numeric]
        categorical = [float(_choice_index(hp, _value_at(hparams, path))) for path, hp in self.categorical]
        return numeric + categorical

    def decode(self, numeric: np.ndarray, categorical: np.ndarray) -> dict[str, Any]:
        """The nested configuration of one encoded point."""
        values = [(path, _from_unit(hp, float(unit))) for (path, hp), unit in zip(self.numeric, numeric)]
        values += [(path, hp.vals[int(index)]) for (path, hp), index in zip(self.categorical, categorical)]
        nested: dict[str, Any] = {}
        for path, value in sorted(values + self.constants):
            target = nested
            for name in path[:-1]:
                target = target.setdefault(name, {})
            target[path[-1]] = value
        return nested

    def split(self, rows: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
        """Encoded points -> (numeric array, categorical index array)."""
        array = np.array(rows, dtype=float).reshape(len(rows), self.dimensions)
        return array[:, : len(self.numeric)], array[:, len(self.numeric):].astype(int)


class TrialHistory:
    """A view over a sampler history (`new_history()`) that records trials and proposes configurations.

    The search method's advice on fitting the model: `first_results`, how many results a length needs
    (None: max(hyperparameters + 1, `MIN_RESULTS`)); `skip_lengths`, rungs whose ranking does not predict
    the next rung's, whose results the model is not fitted on.
    """

    def __init__(self, state: dict[str, Any], space: Space, first_results: int | None = None,
                 skip_lengths: frozenset[int] | set[int] = frozenset(), index: HistoryIndex | None = None) -> None:
        self.state = state
        self.encoding = SpaceEncoding(space)
        self.space = space
        self.first_results = first_results
        self.skip_lengths = skip_lengths
        self._index = index

    @property
    def index(self) -> HistoryIndex:
        """The history ordered for lookup (`history_index.py`), built on first use unless one was given."""
        if self._index is None:
            self._index = HistoryIndex(self.state)
        return self._index

    # --- recording -----------------------------------------------------------------------------

    def created(self, request_id: int, hparams: dict[str, Any]) -> None:
        config = self.encoding.encode(hparams)
        self.state["configs"][str(request_id)] = config
        if self._index is not None:
            self._index.created(request_id, config)

    def reported(self, request_id: int, length: int, loss: float) -> None:
        losses = self.state["results"].setdefault(str(request_id), {})
        if self._index is not None:
            self._index.reported(request_id, length, loss, losses.get(str(length)))
        losses[str(length)] = loss

    def exited(self, request_id: int, reason: ExitedReason) -> None:
        """INVALID_HP makes the trial's configuration bad at every length; any exit ends the trial."""
        if reason is ExitedReason.INVALID_HP:
            self.state["invalid"].append(request_id)
            losses = self.state["results"].pop(str(request_id), {})
            if self._index is not None:
                self._index.forgotten(request_id, losses)
        self.ended(request_id)

    def ended(self, request_id: int) -> None:
        self.state["ended"][str(request_id)] = True
        if self._index is not None:
            self._index.ended(request_id)

    # --- proposing -----------------------------------------------------------------------------

    def propose(self, rng: np.random.Generator) -> dict[str, Any]:
        """The next configuration: random (see the module's rules) or the model's best candidate."""
        if rng.random() < RANDOM_SHARE or self.encoding.dimensions == 0:
            return self.space.sample(rng)
        lengths = self.model_lengths()
        if not lengths:
            return self.space.sample(rng)
        (good, good_weights), (bad, bad_weights) = self._good_and_bad(lengths)
        good_density = ParzenEstimator(*self.encoding.split(good), self.choices(), good_weights)
        bad_density = ParzenEstimator(*self.encoding.split(bad), self.choices(), bad_weights)
        numeric, categorical = good_density.sample(rng, CANDIDATES)
        ratio = good_density.log_density(numeric, categorical) - bad_density.log_density(numeric, categorical)
        return self.best_untried(numeric, categorical, ratio)

    def best_untried(self, numeric: np.ndarray, categorical: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        """The encoded candidate of the highest score that no trial has tried yet, decoded (the highest of all if
        every one has been tried: in a small discrete space the best one may be tried again)."""
        candidates = (self.encoding.decode(numeric[index], categorical[index])
                      for index in np.argsort(-scores, kind="stable"))
        first = next(candidates)
        untried = (candidate for candidate in itertools.chain([first], candidates)
                   if tuple(self.encoding.encode(candidate)) not in self.index.tried)
        return next(untried, first)

    def model_lengths(self) -> list[int]:
        """Every length with enough results to fit the model on (see the class's advice), longest first."""
        needed = max(self.encoding.dimensions + 1, MIN_RESULTS) if self.first_results is None else self.first_results
        return sorted((length for length, results in self.index.ranked.items()
                       if len(results) >= needed and length not in self.skip_lengths), reverse=True)

    def _good_and_bad(self, lengths: list[int]) -> tuple[tuple[list[list[float]], list[float]],
                                                         tuple[list[list[float]], list[float]]]:
        """(configurations, weights) of the good and of the bad trials of every length in `lengths` (longest
        first): each length's weigh `LOWER_RUNG_WEIGHT` times the previous one's in all, shared evenly; trials
        with invalid hyperparameters and running trials are bad, each weighing as a bad trial of the longest length."""
        configs = self.state["configs"]
        good: list[list[float]] = []
        bad: list[list[float]] = []
        good_weights: list[float] = []
        bad_weights: list[float] = []
        weights = [LOWER_RUNG_WEIGHT ** rung for rung in range(len(lengths))]
        total = sum(weights)
        splits = [self._ranked_split(length, max(int(MAX_BAD_RESULTS * weight / total), 1))
                  for length, weight in zip(lengths, weights)]
        for (good_ids, bad_ids), weight in zip(splits, weights):
            good += [configs[str(request_id)] for request_id in good_ids]
            good_weights += [weight / len(good_ids)] * len(good_ids)
            bad += [configs[str(request_id)] for request_id in bad_ids]
            bad_weights += [weight / len(bad_ids)] * len(bad_ids)
        every_other = 1.0 / max(len(splits[0][1]), 1)  # as one bad result of the longest length
        others = [configs[str(request_id)] for request_id in self.state["invalid"] + sorted(self.index.running)]
        return (good, good_weights), (bad + others, bad_weights + [every_other] * len(others))

    def _ranked_split(self, length: int, most_bad: int) -> tuple[list[int], list[int]]:
        """The request ids of `length`'s good results (the best `GOOD_SHARE`, at least one, at most `MAX_GOOD`)
        and of an even sample, in rank order, of at most `most_bad` of the rest."""
        ranked = [request_id for _, request_id in self.index.ranked[length]]
        good_count = max(1, min(math.ceil(GOOD_SHARE * len(ranked)), MAX_GOOD))
        bad = ranked[good_count:]
        return ranked[:good_count], bad[::math.ceil(len(bad) / most_bad) if bad else 1]

    def choices(self) -> list[int]:
        return [len(hp.vals) for _, hp in self.encoding.categorical]


class TPESampler(Sampler):
    """`sampler: tpe`: the model-based proposals of this module."""

    name = "tpe"

    def propose(self, history: TrialHistory, rng: np.random.Generator) -> dict[str, Any]:
        return history.propose(rng)


class ModelBasedSampling:
    """`searcher.sampler` for a search method: mixed into `random` and `adaptive_asha`.

    The method calls `start_sampler()` in `__init__` (a random sampler until told otherwise) and the
    `remember_*` methods as trials are created, report and end; `create_searcher` then gives it the sampler
    `searcher.sampler` names (`use_sampler`). A sampler that learns has the record kept in `sampler_history`;
    `propose_hparams()` (the hook of `SearchMethod.sample_hparams`) asks the sampler.
    """

    config: Any
    space: Space
    rng: np.random.Generator
    sampler: Sampler
    sampler_history: dict[str, Any] | None

    def start_sampler(self) -> None:
        self.sampler = RandomSampler(self.space)
        self.sampler_history = None

    def use_sampler(self, sampler: Sampler) -> None:
        """Choose new trials' hyperparameters with `sampler` from now on."""
        self.sampler = sampler
        if sampler.learns and self.sampler_history is None:
            self.sampler_history = new_history()

    def propose_hparams(self) -> dict[str, Any]:
        if self.sampler_history is None:
            return self.sampler.propose(TrialHistory(new_history(), self.space), self.rng)
        history = TrialHistory(self.sampler_history, self.space, self.first_model_results(), self.untrusted_lengths(),
                               self._history_index())
        return self.sampler.propose(history, self.rng)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()  # type: ignore[misc]
        state.pop("_index", None)
        return state

    def first_model_results(self) -> int | None:
        """How many results a length needs to fit the model on (None: the module's rule)."""
        return None

    def untrusted_lengths(self) -> set[int]:
        """Lengths whose results the model must not be fitted on (none unless the method measures fidelity)."""
        return set()

    def remember_created(self, request_id: int, hparams: dict[str, Any]) -> None:
        if self.sampler_history is not None:
            self._recorder().created(request_id, hparams)

    def remember_result(self, request_id: int, length: int, loss: float) -> None:
        if self.sampler_history is not None:
            self._recorder().reported(request_id, length, loss)

    def remember_exit(self, request_id: int, reason: ExitedReason) -> None:
        if self.sampler_history is not None:
            self._recorder().exited(request_id, reason)

    def remember_closed(self, request_id: int) -> None:
        if self.sampler_history is not None:
            self._recorder().ended(request_id)

    def _recorder(self) -> TrialHistory:
        assert self.sampler_history is not None
        return TrialHistory(self.sampler_history, self.space, index=self._history_index())

    def _history_index(self) -> HistoryIndex:
        """The index of `sampler_history`, kept in step with it (rebuilt when the history was replaced, as
        `load_state_dict` does); derived, so not part of `state_dict()`."""
        index = vars(self).get("_index")
        if index is None or index.state is not self.sampler_history:
            index = self._index = HistoryIndex(self.sampler_history)
        return index


def _to_unit(hp: Any, value: Any) -> float:
    low, high = _encoded_range(hp)
    encoded = _exponent(hp, float(value)) if isinstance(hp, Log) else float(value)
    return min(max((encoded - low) / (high - low), 0.0), 1.0)


def _from_unit(hp: Any, unit: float) -> Any:
    low, high = _encoded_range(hp)
    encoded = low + unit * (high - low)
    if isinstance(hp, Int):
        return int(min(max(round_half_away(encoded), hp.minval), hp.maxval))
    if isinstance(hp, Log):
        return float(hp.base ** min(max(encoded, hp.minval), hp.maxval))
    return float(min(max(encoded, hp.minval), hp.maxval))


def _encoded_range(hp: Any) -> tuple[float, float]:
    if isinstance(hp, Int):
        return hp.minval - 0.5, hp.maxval + 0.5
    return float(hp.minval), float(hp.maxval)


def _exponent(hp: Log, value: float) -> float:
    """The exponent x with base ** x == value (the middle of the range for base 1, where every x gives 1)."""
    if hp.base == 1 or value <= 0:
        return (hp.minval + hp.maxval) / 2
    return math.log(value) / math.log(hp.base)


def _value_at(hparams: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path` of a nested configuration (a categorical's value may itself be a mapping)."""
    for name in path:
        hparams = hparams[name]
    return hparams


def _choice_index(hp: Categorical, value: Any) -> int:
    return next(index for index, choice in enumerate(hp.vals) if Categorical([choice]).contains(value))
