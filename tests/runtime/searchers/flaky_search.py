"""A custom search method with a bug that an environment variable switches on: after its trial's first
validation it asks for work from request id 42, which it never created."""

import os

from hpt_core.searchers import Close, Create, SearchMethod, Shutdown, ValidateAfter


class FlakySearch(SearchMethod):
    def initial_operations(self):
        return [Create(1, self.space.sample(self.rng)), ValidateAfter(1, 2)]

    def on_validation_completed(self, request_id, metric, length):
        if os.environ.get("FLAKY_SEARCH_BROKEN"):
            return [ValidateAfter(42, length)]
        return [Close(request_id)]

    def on_trial_closed(self, request_id):
        return [Shutdown()]

    def progress(self):
        return 0.0
