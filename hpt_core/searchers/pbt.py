"""`searcher.name: pbt` — population-based training."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import Field

from hpt_core.config import Fraction, Length, PositiveInt, SearcherConfig, StrictFloat, StrictModel
from hpt_core.operations import Close, Create, ExitedReason, Operation, ValidateAfter
from hpt_core.searchers.base import SearchMethod
from hpt_core.space import Space


class ReplaceFunction(StrictModel):
    truncate_fraction: Annotated[StrictFloat, Field(ge=0.0, le=0.5)] = 0.5


class ExploreFunction(StrictModel):
    resample_probability: Fraction = 0.5
    perturb_factor: Fraction = 0.2


class PBTConfig(SearcherConfig):
    population_size: PositiveInt
    num_rounds: PositiveInt
    length_per_round: Length
    replace_function: ReplaceFunction = Field(default_factory=ReplaceFunction)
    explore_function: ExploreFunction = Field(default_factory=ExploreFunction)

    @property
    def unit_length(self) -> Length:
        return self.length_per_round

    @property
    def longest_length(self) -> Length:
        """A member that survives every round trains `num_rounds` rounds."""
        return Length.model_validate({self.length_per_round.unit: self.length_per_round.value * self.num_rounds})


class PBTSearch(SearchMethod):
    """Population-based training: train a population in rounds, replace the worst with mutated copies of the best.

    `population_size` random trials each train `length_per_round`. Once every member has
    reported for the round, the members are ranked by the searcher metric (ties by request id).
    After `num_rounds` rounds everyone is closed; before that, the worst
    k = floor(truncate_fraction * population_size) are closed, each of the best k gets a child
    with perturbed hyperparameters that starts from its parent's latest checkpoint (and trains
    `length_per_round` from 0), and every other member trains one more round.

    A member that exits early cannot train again. It ranks worst in its round and in every later
    round, is never cloned, and keeps its slot (as a dead slot) until truncation gives the slot
    to a child; so the population always has `population_size` slots. If every member is dead,
    the search ends.

    >>> from hpt_core import create_searcher
    >>> searcher = create_searcher({
    ...     "searcher": {"name": "pbt", "metric": "loss", "population_size": 2, "num_rounds": 2,
    ...                  "length_per_round": 5, "replace_function": {"truncate_fraction": 0.5}},
    ...     "hyperparameters": {"lr": {"type": "double", "minval": 0.0, "maxval": 1.0}}})
    >>> len(searcher.initial_operations())
    4
    >>> searcher.on_validation_completed(1, {"loss": 0.1}, 5)
    []
    >>> [type(operation).__name__ for operation in searcher.on_validation_completed(2, {"loss": 0.9}, 5)]
    ['Close', 'Create', 'ValidateAfter', 'ValidateAfter']
    """

    name: ClassVar[str] = "pbt"
    config_model: ClassVar[type[SearcherConfig]] = PBTConfig

    def __init__(self, config: PBTConfig, space: Space, seed: int = 0) -> None:
        super().__init__(config, space, seed)
        self.population: list[int] = []
        self.dead_slots = 0
        self.round_losses: dict[str, float] = {}
        self.rounds_completed: dict[str, int] = {}
        self.hparams: dict[str, dict[str, Any]] = {}
        self.rounds_done = 0
        self.closed: list[int] = []
        self.finished = False
        self.is_shut_down = False

    @property
    def length_per_round(self) -> int:
        return self.config.length_per_round.value

    # --- events --------------------------------------------------------------------------------

    def initial_operations(self) -> list[Operation]:
        operations: list[Operation] = []
        for _ in range(self.config.population_size):
            operations += self._add_member(self.sample_hparams(), parent=None)
        return operations

    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        loss = self.loss(metric)
        key = str(request_id)
        if request_id not in self.population or key in self.round_losses or length < self._target_length(request_id):
            return []
        self.round_losses[key] = loss
        self.rounds_completed[key] += 1
        return self._end_round_if_complete()

    def on_trial_exited_early(self, request_id: int, reason: ExitedReason | str) -> list[Operation]:
        self.record_exit(request_id, reason)
        return self._lose_member(request_id)

    def on_trial_closed(self, request_id: int) -> list[Operation]:
        if request_id in self.closed:
            return []
        self.closed.append(request_id)
        operations = self._lose_member(request_id)
        if self.finished and not self.is_shut_down and set(self.created) <= set(self.closed):
            self.is_shut_down = True
            operations.append(self.shutdown())
        return operations

    def progress(self) -> float:
        """Rounds done / num_rounds (1.0 once shut down)."""
        if self.is_shut_down:
            return 1.0
        return self.rounds_done / self.config.num_rounds

    # --- rounds --------------------------------------------------------------------------------

    def _target_length(self, request_id: int) -> int:
        return (self.rounds_completed[str(request_id)] + 1) * self.length_per_round

    def _add_member(self, hparams: dict[str, Any], parent: int | None) -> list[Operation]:
        request_id = self.new_request_id()
        self.population.append(request_id)
        self.hparams[str(request_id)] = hparams
        self.rounds_completed[str(request_id)] = 0
        return [Create(request_id, hparams, checkpoint=parent), ValidateAfter(request_id, self.length_per_round)]

    def _lose_member(self, request_id: int) -> list[Operation]:
        """A live member ended without being closed by the search: its slot is dead from now on."""
        if request_id not in self.population:
            return []
        self._forget(request_id)
        self.dead_slots += 1
        return self._end_round_if_complete()

    def _forget(self, request_id: int) -> None:
        self.population.remove(request_id)
        for table in (self.round_losses, self.rounds_completed, self.hparams):
            table.pop(str(request_id), None)

    def _end_round_if_complete(self) -> list[Operation]:
        if self.finished or len(self.round_losses) < len(self.population):
            return []
        ranking = sorted(self.population, key=lambda request_id: (self.round_losses[str(request_id)], request_id))
        self.round_losses = {}
        if not ranking:
            self.finished = True
            return []
        self.rounds_done += 1
        if self.rounds_done >= self.config.num_rounds:
            self.finished = True
            return self._close(ranking)
        return self._truncate_and_explore(ranking)

    def _truncate_and_explore(self, ranking: list[int]) -> list[Operation]:
        """Close the worst k slots, clone the best k live members, train every other member one more round."""
        slots: list[int | None] = [*ranking, *([None] * self.dead_slots)]
        truncated = math.floor(self.config.replace_function.truncate_fraction * self.config.population_size)
        worst = [request_id for request_id in slots[len(slots) - truncated:] if request_id is not None]
        parents = [request_id for request_id in slots[:truncated] if request_id is not None]
        survivors = [request_id for request_id in slots[:len(slots) - truncated] if request_id is not None]
        operations = self._close(worst)
        for parent in parents:
            operations += self._add_member(self._explore(parent), parent=parent)
        operations += [ValidateAfter(request_id, self._target_length(request_id)) for request_id in survivors]
        self.dead_slots = self.config.population_size - len(self.population)
        return operations

    def _close(self, request_ids: list[int]) -> list[Operation]:
        for request_id in request_ids:
            self._forget(request_id)
        return [Close(request_id) for request_id in request_ids]

    def _explore(self, parent: int) -> dict[str, Any]:
        explore = self.config.explore_function
        return self.space.perturb(self.hparams[str(parent)], self.rng, explore.resample_probability,
                                  explore.perturb_factor)
