"""`searcher.name: single` — one trial, trained to `max_length`."""

from __future__ import annotations

from typing import ClassVar

from hpt_core.config import Length, SearcherConfig
from hpt_core.searchers.random import RandomSearch


class SingleConfig(SearcherConfig):
    max_length: Length


class SingleSearch(RandomSearch):
    """Train one trial to `max_length`, its hyperparameters sampled as random search does (as Determined).

    A random search of one trial, except that the trial is not replaced if it exits with
    INVALID_HP. Handy for a first run of a new model, or to train a chosen configuration
    (give every hyperparameter as a constant).

    >>> from hpt_core import create_searcher
    >>> searcher = create_searcher({"searcher": {"name": "single", "metric": "loss", "max_length": 10},
    ...                             "hyperparameters": {"lr": {"type": "log", "minval": -4, "maxval": -2}}})
    >>> create, validate = searcher.initial_operations()
    >>> 1e-4 <= create.hparams["lr"] <= 1e-2, validate
    (True, ValidateAfter(request_id=1, length=10))
    """

    name: ClassVar[str] = "single"
    config_model: ClassVar[type[SearcherConfig]] = SingleConfig
    replaces_invalid_trials: ClassVar[bool] = False
    extensible: ClassVar[bool] = False

    @property
    def trial_budget(self) -> int:
        return 1
