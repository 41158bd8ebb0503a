"""Search methods: one file per method, named as in `searcher.name`, one event protocol.

>>> from hpt_core import create_searcher
>>> searcher = create_searcher({"searcher": {"name": "random", "metric": "loss", "max_length": 8,
...                                          "max_trials": 2}, "hyperparameters": {"lr": 0.1}})
>>> len([op for op in searcher.initial_operations() if isinstance(op, Create)])
2
"""

from hpt_core.operations import Close, Create, ExitedReason, Operation, Shutdown, ValidateAfter
from hpt_core.searchers.adaptive_asha import AdaptiveASHASearch
from hpt_core.searchers.base import SearchMethod
from hpt_core.searchers.custom import CustomSearch
from hpt_core.searchers.grid import GridSearch
from hpt_core.searchers.pbt import PBTSearch
from hpt_core.searchers.random import RandomSearch
from hpt_core.searchers.sampler import Sampler
from hpt_core.searchers.single import SingleSearch

__all__ = [
    "AdaptiveASHASearch",
    "Close",
    "Create",
    "CustomSearch",
    "ExitedReason",
    "GridSearch",
    "Operation",
    "PBTSearch",
    "RandomSearch",
    "Sampler",
    "SearchMethod",
    "Shutdown",
    "SingleSearch",
    "ValidateAfter",
]
