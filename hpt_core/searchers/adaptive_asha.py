"""`searcher.name: adaptive_asha` — adaptive asynchronous successive halving (the recommended default).

The search runs a few brackets side by side, each an independent asynchronous
successive-halving run (see `asha_bracket`); events are routed to the bracket that created the
trial. The plan follows Determined:

- rungs R = min(max_rungs, floor(log_d(max_length)) + 1, floor(log_d(max_trials)) + 1),
  with the logs computed exactly (log_10(1000) is 3);
- brackets by `mode`: aggressive R; standard floor((R-1)/2)+1 … R; conservative 1 … R
  (or `bracket_rungs`), most rungs first;
- trials per bracket in proportion to d^(rungs-1)/rungs, at least 1, the remainder to the first;
- concurrency M = max(max_concurrent_trials, brackets) split evenly, the remainder to the first
  brackets (max_concurrent_trials 0: each bracket max(the last bracket's trials, floor(d)));
- rung i of r: max(floor(max_length / d^(r-i-1)), 1).

`fidelity: adaptive` (opt-in, hpt's own) measures how well each rung ranks trials as the next
does and promotes more out of a rung that does not (`searchers/fidelity.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any, ClassVar, Literal, Optional

from pydantic import Field

from hpt_core.config import Length, PositiveInt, SearcherConfig, StrictBool, StrictFloat, StrictStr
from hpt_core.errors import SearcherError
from hpt_core.operations import Create, ExitedReason, Operation
from hpt_core.searchers.asha_bracket import (
    Bracket,
    PromotionBracket,
    StoppingBracket,
    new_bracket_state,
)
from hpt_core.searchers.base import SearchMethod
from hpt_core.searchers.fidelity import FIRST_MODEL_RESULTS, MODEL_TRUST, pair_estimate, trust
from hpt_core.searchers.tpe import ModelBasedSampling
from hpt_core.space import Space

PROGRESS_BEFORE_SHUTDOWN = 0.99


class AdaptiveASHAConfig(SearcherConfig):
    max_length: Length
    max_trials: PositiveInt
    mode: Literal["aggressive", "standard", "conservative"] = "standard"
    divisor: Annotated[StrictFloat, Field(gt=1)] = 4.0
    max_rungs: PositiveInt = 5
    bracket_rungs: Optional[Annotated[list[PositiveInt], Field(min_length=1)]] = None
    stop_once: StrictBool = False
    sampler: StrictStr = "random"
    fidelity: Literal["fixed", "adaptive"] = "fixed"


@dataclass(frozen=True)
class BracketPlan:
    """One bracket of the plan: its rung lengths (in max_length's unit), trials and concurrency."""

    rung_lengths: tuple[int, ...]
    max_trials: int
    max_concurrent_trials: int

    @property
    def num_rungs(self) -> int:
        return len(self.rung_lengths)


@dataclass(frozen=True)
class TrialPlacement:
    """Where a trial is: its bracket (index into `brackets()`), its rung, and its status.

    `rung` is the rung the trial trains towards or, once it reported there, the last rung it
    reached; `status` is `training`, `waiting` (may still be promoted) or `closed`.
    """

    bracket: int
    rung: int
    status: str


# --- the plan --------------------------------------------------------------------------------


def largest_exponent(divisor: float, limit: int) -> int:
    """The largest k with divisor**k <= limit, in exact arithmetic.

    >>> largest_exponent(10.0, 1000), largest_exponent(4.0, 15), largest_exponent(2.5, 1)
    (3, 1, 0)
    """
    base = Fraction(divisor)
    exponent, power = 0, base
    while power <= limit:
        exponent, power = exponent + 1, power * base
    return exponent


def rung_count(max_rungs: int, max_length: int, max_trials: int, divisor: float) -> int:
    """R = min(max_rungs, floor(log_d(max_length)) + 1, floor(log_d(max_trials)) + 1)."""
    return min(max_rungs, largest_exponent(divisor, max_length) + 1, largest_exponent(divisor, max_trials) + 1)


def bracket_rung_counts(config: AdaptiveASHAConfig) -> list[int]:
    """Rungs per bracket, most rungs first."""
    if config.bracket_rungs is not None:
        return sorted(config.bracket_rungs, reverse=True)
    rungs = rung_count(config.max_rungs, config.max_length.value, config.max_trials, config.divisor)
    fewest = {"aggressive": rungs, "standard": (rungs - 1) // 2 + 1, "conservative": 1}[config.mode]
    return list(range(rungs, fewest - 1, -1))


def bracket_trial_counts(max_trials: int, divisor: float, rung_counts: list[int]) -> list[int]:
    """Trials per bracket, in proportion to divisor^(rungs-1)/rungs, at least 1, remainder to the first.

    >>> bracket_trial_counts(100, 10.0, [3, 2])
    [87, 13]
    """
    weights = [Fraction(divisor) ** (rungs - 1) / rungs for rungs in rung_counts]
    counts = [max(int(weight / sum(weights) * max_trials), 1) for weight in weights]
    counts[0] += max(max_trials - sum(counts), 0)
    return counts


def bracket_concurrency(max_concurrent_trials: int, divisor: float, trial_counts: list[int]) -> list[int]:
    """Concurrency per bracket: M = max(max_concurrent_trials, brackets) split evenly, remainder first.

    >>> bracket_concurrency(16, 4.0, [70, 22, 8]), bracket_concurrency(0, 4.0, [70, 22, 3])
    ([6, 5, 5], [4, 4, 4])
    """
    brackets = len(trial_counts)
    if max_concurrent_trials == 0:
        return [max(trial_counts[-1], int(divisor))] * brackets
    total = max(max_concurrent_trials, brackets)
    share, remainder = divmod(total, brackets)
    return [share + (index < remainder) for index in range(brackets)]


def rung_lengths(max_length: int, divisor: float, rungs: int) -> list[int]:
    """max(floor(max_length / divisor^(rungs-i-1)), 1) for each rung i; the top rung is max_length.

    >>> rung_lengths(16, 4.0, 3), rung_lengths(1000, 10.0, 2)
    ([1, 4, 16], [100, 1000])
    """
    return [max(int(Fraction(max_length) / Fraction(divisor) ** (rungs - index - 1)), 1) for index in range(rungs)]


def plan_brackets(config: AdaptiveASHAConfig) -> list[BracketPlan]:
    """The brackets an adaptive ASHA config asks for."""
    rung_counts = bracket_rung_counts(config)
    trials = bracket_trial_counts(config.max_trials, config.divisor, rung_counts)
    concurrency = bracket_concurrency(config.max_concurrent_trials, config.divisor, trials)
    return [
        BracketPlan(tuple(rung_lengths(config.max_length.value, config.divisor, rungs)), count, limit)
        for rungs, count, limit in zip(rung_counts, trials, concurrency)
    ]


# --- the search method -----------------------------------------------------------------------


class AdaptiveASHASearch(ModelBasedSampling, SearchMethod):
    """Adaptive ASHA: brackets of asynchronous successive halving, Determined's default searcher.

    With `stop_once: false` (the default) a trial trains to its rung's length and waits there
    until it is promoted (resumed from its checkpoint to the next rung's length) or closed; with
    `stop_once: true` a trial either continues at once or is closed. See `PromotionBracket` and
    `StoppingBracket` for the rules, `brackets()` for the plan and `placements()` for where each
    trial is. With `sampler: tpe` or `gp` each new trial's configuration comes from a model of the results
    at every rung (`searchers/tpe.py`, `searchers/gp.py`); rungs, promotions and concurrency are unchanged.

    >>> from hpt_core import create_searcher
    >>> searcher = create_searcher({"searcher": {"name": "adaptive_asha", "metric": "loss", "max_length": 16,
    ...                                          "max_trials": 16, "mode": "aggressive"},
    ...                             "hyperparameters": {"lr": 0.1}})
    >>> searcher.brackets()
    [BracketPlan(rung_lengths=(1, 4, 16), max_trials=16, max_concurrent_trials=16)]
    >>> searcher.initial_operations()[:2]
    [Create(request_id=1, hparams={'lr': 0.1}, checkpoint=None), ValidateAfter(request_id=1, length=1)]
    """

    name: ClassVar[str] = "adaptive_asha"
    config_model: ClassVar[type[SearcherConfig]] = AdaptiveASHAConfig
    extensible: ClassVar[bool] = True

    def __init__(self, config: AdaptiveASHAConfig, space: Space, seed: int = 0) -> None:
        super().__init__(config, space, seed)
        self.bracket_states = [
            new_bracket_state(list(plan.rung_lengths), plan.max_trials, plan.max_concurrent_trials)
            for plan in plan_brackets(config)
        ]
        self.trial_brackets: dict[str, int] = {}
        self.rung_correlations: dict[str, list[float]] = {}
        self.closed: list[int] = []
        self.is_shut_down = False
        self.start_sampler()

    # --- events --------------------------------------------------------------------------------

    def initial_operations(self) -> list[Operation]:
        return [operation for index in range(len(self.bracket_states)) for operation in self._bracket(index).start()]

    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        loss = self.loss(metric)
        bracket = self._bracket_of(request_id)
        self.remember_result(request_id, length, loss)
        operations = bracket.on_validation(request_id, loss, length)
        if self.config.fidelity == "adaptive":
            self._measure_rungs_around(length)
        return operations

    def on_trial_exited_early(self, request_id: int, reason: ExitedReason | str) -> list[Operation]:
        reason = self.record_exit(request_id, reason)
        bracket = self._bracket_of(request_id)
        self.remember_exit(request_id, reason)
        return bracket.on_exit(request_id, reason)

    def on_trial_closed(self, request_id: int) -> list[Operation]:
        self._bracket_index(request_id)
        if request_id in self.closed:
            return []
        self.closed.append(request_id)
        self.remember_closed(request_id)
        if self.is_shut_down or len(self.closed) < len(self.created):
            return []
        self.is_shut_down = True
        return [self.shutdown()]

    def extend(self, additional_trials: int) -> list[Operation]:
        """Share `additional_trials` between the brackets in proportion to divisor^(rungs-1)/rungs (as max_trials
        was shared, but exactly that many in all) and start as many as each bracket's concurrency allows."""
        weights = [Fraction(self.config.divisor) ** (len(state["rung_lengths"]) - 1) / len(state["rung_lengths"])
                   for state in self.bracket_states]
        shares = [int(weight / sum(weights) * additional_trials) for weight in weights]
        shares[0] += additional_trials - sum(shares)  # exactly `additional_trials`, the rest to the first bracket
        operations: list[Operation] = []
        for index, (state, share) in enumerate(zip(self.bracket_states, shares)):
            state["max_trials"] += share
            bracket = self._bracket(index)
            room = max(state["max_concurrent_trials"] - bracket.in_flight(), 0)
            operations += [operation for _ in range(min(room, share)) for operation in bracket.add_trial()]
        self.is_shut_down = False
        return operations

    def progress(self) -> float:
        """Bottom-rung results (early exits included) over the trials planned; 1.0 only once shut down."""
        if self.is_shut_down:
            return 1.0
        done = sum(len(state["rungs"][0]) for state in self.bracket_states)
        planned = sum(state["max_trials"] for state in self.bracket_states)
        return min(done / planned, PROGRESS_BEFORE_SHUTDOWN)

    # --- read-only views -----------------------------------------------------------------------

    def brackets(self) -> list[BracketPlan]:
        """The plan: per bracket (most rungs first) its rung lengths, trials and concurrency."""
        return [
            BracketPlan(tuple(state["rung_lengths"]), state["max_trials"], state["max_concurrent_trials"])
            for state in self.bracket_states
        ]

    def placements(self) -> dict[int, TrialPlacement]:
        """Per request id, the bracket and rung the trial reached and its status."""
        placements = {}
        for index, state in enumerate(self.bracket_states):
            for key, trial in state["trials"].items():
                placements[int(key)] = TrialPlacement(index, trial["rung"], trial["status"])
        return dict(sorted(placements.items()))

    def fidelity_trust(self) -> dict[str, float]:
        """Per pair of consecutive rung lengths (`"low-high"`) measured so far, how far `fidelity: adaptive`
        trusts the low rung's ranking (1: ASHA's top 1/divisor promoted, 0: every trial promoted)."""
        return {pair: trust(*estimate) for pair, estimate in self.rung_correlations.items()}

    # --- the sampler's view of the rungs (`fidelity: adaptive`) ----------------------------------

    def first_model_results(self) -> int | None:
        return FIRST_MODEL_RESULTS if self.config.fidelity == "adaptive" else None

    def untrusted_lengths(self) -> set[int]:
        return {int(pair.split("-")[0]) for pair, level in self.fidelity_trust().items() if level < MODEL_TRUST}

    # --- helpers -------------------------------------------------------------------------------

    def _bracket(self, index: int) -> Bracket:
        kind = StoppingBracket if self.config.stop_once else PromotionBracket
        adaptive = self.config.fidelity == "adaptive"
        rung_divisor = (lambda rung: self._promotion_divisor(index, rung)) if adaptive else None
        return kind(self.bracket_states[index], self.config.divisor, lambda: self._new_trial(index), rung_divisor)

    def _promotion_divisor(self, bracket_index: int, rung: int) -> float:
        """divisor ** trust: ASHA's divisor out of a rung that ranks as the next does, 1 out of one that does not."""
        lengths = self.bracket_states[bracket_index]["rung_lengths"]
        estimate = self.rung_correlations.get(f"{lengths[rung]}-{lengths[rung + 1]}")
        return self.config.divisor if estimate is None else self.config.divisor ** trust(*estimate)

    def _measure_rungs_around(self, length: int) -> None:
        """Re-measure every pair of consecutive rung lengths that `length` belongs to."""
        pairs = {(low, high) for state in self.bracket_states
                 for low, high in zip(state["rung_lengths"], state["rung_lengths"][1:])
                 if length in (low, high) and low < high}
        for low, high in sorted(pairs):
            self.rung_correlations[f"{low}-{high}"] = pair_estimate(self.bracket_states, low, high)

    def _bracket_index(self, request_id: int) -> int:
        """The bracket that created the trial (a SearcherError for a request id never made)."""
        index = self.trial_brackets.get(str(request_id))
        if index is None:
            raise SearcherError(f"adaptive_asha never requested a trial with request id {request_id!r}")
        return index

    def _bracket_of(self, request_id: int) -> Bracket:
        return self._bracket(self._bracket_index(request_id))

    def _new_trial(self, bracket_index: int) -> Create:
        hparams = self.sample_hparams()
        request_id = self.new_request_id()
        self.remember_created(request_id, hparams)
        self.trial_brackets[str(request_id)] = bracket_index
        return Create(request_id, hparams)
