"""`searcher.name: grid`."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from hpt_core.config import Length, SearcherConfig
from hpt_core.errors import Problem
from hpt_core.searchers.random import RandomSearch
from hpt_core.space import PATH_SEPARATOR, Categorical, Const, Space, grid_length

MAX_GRID_TRIALS = 100_000
"""The most trials a grid search may make: a larger grid is refused with the counts that make it."""


class GridConfig(SearcherConfig):
    max_length: Length

    def check_space(self, space: Space) -> list[Problem]:
        """Grid search needs `count` on every int, double and log hyperparameter, and takes no extra points."""
        problems = [
            Problem(f"hyperparameters.{PATH_SEPARATOR.join(path)}.count",
                    f"grid search needs `count` on every {hp.type} hyperparameter (a positive integer)")
            for path, hp in space.leaves()
            if not isinstance(hp, (Const, Categorical)) and hp.count is None
        ]
        size = space.grid_size()
        if not problems and size > MAX_GRID_TRIALS:
            counts = ", ".join(f"{PATH_SEPARATOR.join(path)}: {grid_length(hp):,}" for path, hp in space.leaves()
                               if grid_length(hp) > 1)
            problems.append(Problem("hyperparameters", f"grid search would run one trial per grid point, {size:,} "
                                    f"trials ({counts}); at most {MAX_GRID_TRIALS:,}: lower the counts, or use "
                                    "random or adaptive_asha with max_trials"))
        if self.points_to_evaluate:
            problems.append(Problem("searcher.points_to_evaluate", "grid search tries exactly the grid's points; "
                                    "use random, adaptive_asha or pbt to try chosen points first",
                                    self.points_to_evaluate))
        return problems


class GridSearch(RandomSearch):
    """Train one trial per grid point to `max_length`, at most `max_concurrent_trials` at a time.

    The points are `Space.grid()` in order: the Cartesian product, row-major over the sorted
    hyperparameter names (the first name varies slowest; a nested group adds one axis per
    hyperparameter). A point whose trial errors or exits with INVALID_HP is used up, never retried.

    >>> from hpt_core import create_searcher
    >>> searcher = create_searcher({
    ...     "searcher": {"name": "grid", "metric": "loss", "max_length": 4},
    ...     "hyperparameters": {"layers": {"type": "int", "minval": 1, "maxval": 2, "count": 2},
    ...                         "act": {"type": "categorical", "vals": ["relu", "tanh"]}}})
    >>> for operation in searcher.initial_operations()[::2]:
    ...     print(operation.hparams)
    {'act': 'relu', 'layers': 1}
    {'act': 'relu', 'layers': 2}
    {'act': 'tanh', 'layers': 1}
    {'act': 'tanh', 'layers': 2}
    """

    name: ClassVar[str] = "grid"
    config_model: ClassVar[type[SearcherConfig]] = GridConfig
    extensible: ClassVar[bool] = False
    replaces_invalid_trials: ClassVar[bool] = False

    @property
    def trial_budget(self) -> int:
        return len(self._points())

    def next_hparams(self) -> dict[str, Any]:
        return copy.deepcopy(self._points()[len(self.created)])

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.pop("_grid_points", None)
        return state

    def _points(self) -> list[dict[str, Any]]:
        """The grid, computed once (derived from the space, so not part of the state)."""
        if "_grid_points" not in vars(self):
            self._grid_points = self.space.grid()
        return self._grid_points
