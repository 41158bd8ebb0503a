"""A sampler plugin: each numeric hyperparameter walks from its lowest value to its highest in five steps."""

import numpy as np

from hpt_core import hookimpl
from hpt_core.searchers import Sampler

STEPS = 5


class StepSampler(Sampler):
    """`searcher.sampler: steps`: the k-th new trial (counting from 0) takes every numeric hyperparameter at
    (k mod 5) / 4 of its range, and the first choice of every categorical one."""

    name = "steps"

    def propose(self, history, rng):
        step = len(history.state["configs"]) % STEPS / (STEPS - 1)
        numeric = np.full(len(history.encoding.numeric), step)
        categorical = np.zeros(len(history.encoding.categorical), dtype=int)
        return history.encoding.decode(numeric, categorical)


@hookimpl
def hpt_samplers():
    return [StepSampler]
