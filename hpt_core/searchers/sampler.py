"""`searcher.sampler`: how a search method that takes one (`random`, `adaptive_asha`) chooses a new trial's
hyperparameters. hpt's are `random` (Determined's behaviour), `tpe` (`searchers/tpe.py`) and `gp`
(`searchers/gp.py`); a plugin adds more through the `hpt_samplers` hook.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hpt_core.space import Space

if TYPE_CHECKING:
    from hpt_core.searchers.tpe import TrialHistory


class Sampler(abc.ABC):
    """Base of a sampler: made once per search method with the experiment's space.

    A sampler that `learns` is given the trials so far (a `TrialHistory`: `history.state` holds each
    trial's configuration encoded by `history.encoding`, its losses per length, which had invalid
    hyperparameters and which ended); it is part of the search method's state, so it survives a resume.
    """

    name: ClassVar[str]
    learns: ClassVar[bool] = True

    def __init__(self, space: Space) -> None:
        self.space = space

    @abc.abstractmethod
    def propose(self, history: TrialHistory, rng: np.random.Generator) -> dict[str, Any]:
        """The next trial's hyperparameters; all randomness from `rng` (the search method's generator)."""


class RandomSampler(Sampler):
    """`sampler: random`: a random sample of the space, as Determined samples."""

    name = "random"
    learns = False

    def propose(self, history: TrialHistory, rng: np.random.Generator) -> dict[str, Any]:
        return self.space.sample(rng)
