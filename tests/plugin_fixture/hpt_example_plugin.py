"""A third-party hpt plugin used by the tests: a search method with its dashboard view, and two observers."""

import json
import os

from pydantic import Field

from hpt_core import hookimpl
from hpt_core.config import Length, PositiveInt, SearcherConfig
from hpt_core.searchers import Close, Create, SearchMethod, ValidateAfter


class EveryOtherConfig(SearcherConfig):
    max_length: Length = Length(batches=4)
    tries: PositiveInt = Field(default=2)


class EveryOther(SearchMethod):
    """Creates `tries` trials one after another."""

    name = "every_other"
    config_model = EveryOtherConfig

    def __init__(self, config, space, seed=0):
        super().__init__(config, space, seed)
        self.closed = 0

    def initial_operations(self):
        return self._next()

    def _next(self):
        request_id = self.new_request_id()
        return [Create(request_id, self.space.sample(self.rng)), ValidateAfter(request_id, self.max_length)]

    def on_validation_completed(self, request_id, metric, length):
        return [Close(request_id)]

    def on_trial_closed(self, request_id):
        self.closed += 1
        return self._next() if self.closed < self.config.tries else [self.shutdown()]

    def progress(self):
        return self.closed / self.config.tries


@hookimpl
def hpt_search_methods():
    return [EveryOther]


@hookimpl
def hpt_search_method_view(name, search):
    """The dashboard's view of `every_other`: how many of its trials have closed."""
    if name != EveryOther.name:
        return None
    return {"closed": search.searcher_state().get("closed", 0)}


@hookimpl
def hpt_experiment_started(experiment_id, config):
    raise RuntimeError("this observer is broken")


@hookimpl
def hpt_experiment_ended(experiment_id, state):
    with open(os.environ["HPT_PLUGIN_LOG"], "a") as log:
        log.write(json.dumps({"experiment_id": experiment_id, "state": state}) + "\n")
