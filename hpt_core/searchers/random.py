"""`searcher.name: random` — random configurations, each trained to `max_length`.

Single and grid search are the same pool of full-length trials with another budget and another
way of choosing hyperparameters, so they subclass `RandomSearch` (as Determined's single search
is a random search of one trial).
"""

from __future__ import annotations

from typing import Any, ClassVar

from hpt_core.config import Length, PositiveInt, SearcherConfig, StrictStr
from hpt_core.operations import Close, Create, ExitedReason, Operation, ValidateAfter
from hpt_core.searchers.base import SearchMethod
from hpt_core.searchers.tpe import ModelBasedSampling
from hpt_core.space import Space


class RandomConfig(SearcherConfig):
    max_length: Length
    max_trials: PositiveInt
    sampler: StrictStr = "random"


class RandomSearch(ModelBasedSampling, SearchMethod):
    """Train `max_trials` random configurations to `max_length`, `max_concurrent_trials` at a time.

    It starts min(max_trials, max_concurrent_trials) trials (all of them when
    max_concurrent_trials is 0); each closed trial makes room for the next until max_trials
    exist. A trial that exits with INVALID_HP is replaced and does not count towards
    max_trials; any other early exit counts. With `sampler: tpe` or `gp` new configurations come from a
    model of the results so far (`searchers/tpe.py`, `searchers/gp.py`); nothing else changes.

    >>> from hpt_core import create_searcher
    >>> searcher = create_searcher({"searcher": {"name": "random", "metric": "loss", "max_length": 8,
    ...                                          "max_trials": 3, "max_concurrent_trials": 2},
    ...                             "hyperparameters": {"lr": {"type": "double", "minval": 0, "maxval": 1}}})
    >>> [type(operation).__name__ for operation in searcher.initial_operations()]
    ['Create', 'ValidateAfter', 'Create', 'ValidateAfter']
    >>> searcher.on_validation_completed(1, {"loss": 0.5}, 8)
    [Close(request_id=1)]
    >>> [type(operation).__name__ for operation in searcher.on_trial_closed(1)]
    ['Create', 'ValidateAfter']
    """

    name: ClassVar[str] = "random"
    config_model: ClassVar[type[SearcherConfig]] = RandomConfig
    extensible: ClassVar[bool] = True
    replaces_invalid_trials: ClassVar[bool] = True

    def __init__(self, config: SearcherConfig, space: Space, seed: int = 0) -> None:
        super().__init__(config, space, seed)
        self.open_trials: list[int] = []
        self.closing: list[int] = []
        self.closed: list[int] = []
        self.uncounted: list[int] = []
        self.lengths: dict[str, int] = {}
        self.is_shut_down = False
        self.extra_trials = 0
        self.start_sampler()

    # --- what subclasses change ----------------------------------------------------------------

    @property
    def trial_budget(self) -> int:
        """How many trials the search trains (trials replaced after INVALID_HP not included)."""
        return self.config.max_trials + self.extra_trials

    def next_hparams(self) -> dict[str, Any]:
        """The hyperparameters of the next trial."""
        return self.sample_hparams()

    # --- events --------------------------------------------------------------------------------

    def initial_operations(self) -> list[Operation]:
        return self._fill_free_slots()

    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        loss = self.loss(metric)
        if request_id not in self.open_trials or request_id in self.closing:
            return []
        self.remember_result(request_id, length, loss)
        self.lengths[str(request_id)] = max(length, self.lengths.get(str(request_id), 0))
        if length < self.max_length:
            return []
        self.closing.append(request_id)
        return [Close(request_id)]

    def on_trial_exited_early(self, request_id: int, reason: ExitedReason | str) -> list[Operation]:
        reason = self.record_exit(request_id, reason)
        self.remember_exit(request_id, reason)
        if reason is ExitedReason.INVALID_HP and self.replaces_invalid_trials:
            self.uncounted.append(request_id)
        return []

    def on_trial_closed(self, request_id: int) -> list[Operation]:
        if request_id not in self.open_trials:
            return []
        self.open_trials.remove(request_id)
        self.closed.append(request_id)
        self.remember_closed(request_id)
        operations = self._fill_free_slots()
        if not self.open_trials and not self.is_shut_down:
            self.is_shut_down = True
            operations.append(self.shutdown())
        return operations

    def extend(self, additional_trials: int) -> list[Operation]:
        """`additional_trials` more trials, sampled as before (the random generator goes on where it was)."""
        self.extra_trials += additional_trials
        self.is_shut_down = False
        return self._fill_free_slots()

    def progress(self) -> float:
        """Mean completion of the budgeted trials: reported length / max_length, 1 once ended."""
        if self.is_shut_down:
            return 1.0
        counted = [request_id for request_id in self.created if request_id not in self.uncounted]
        return sum(self._completion(request_id) for request_id in counted) / self.trial_budget

    # --- helpers -------------------------------------------------------------------------------

    def _counted_trials(self) -> int:
        return len(self.created) - len(self.uncounted)

    def _has_free_slot(self) -> bool:
        limit = self.config.max_concurrent_trials
        return limit == 0 or len(self.open_trials) < limit

    def _fill_free_slots(self) -> list[Operation]:
        operations: list[Operation] = []
        while self._has_free_slot() and self._counted_trials() < self.trial_budget:
            hparams = self.next_hparams()
            request_id = self.new_request_id()
            self.remember_created(request_id, hparams)
            self.open_trials.append(request_id)
            operations += [Create(request_id, hparams), ValidateAfter(request_id, self.max_length)]
        return operations

    def _completion(self, request_id: int) -> float:
        if request_id in self.closed or str(request_id) in self.exits:
            return 1.0
        return min(self.lengths.get(str(request_id), 0) / self.max_length, 1.0)
