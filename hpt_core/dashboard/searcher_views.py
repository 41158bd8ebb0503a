"""The search method's own view of an experiment (e.g. ASHA's brackets and rungs, PBT's lineage tree).

The dashboard knows no search method by name: each contributes its view through the
`hpt_search_method_view` hook, given a `SearchData` of the experiment to read from.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hpt_core.dashboard.state import DashboardState
from hpt_core.plugins import search_method_view
from hpt_core.storage import queries
from hpt_core.storage.queries import TrialRow


class SearchData:
    """What a search method's view may read of one experiment; each part is read only when asked for."""

    def __init__(self, state: DashboardState, experiment_id: int) -> None:
        self._state = state
        self._record = state.experiment(experiment_id)
        self._trials = queries.trial_rows(state.storage, experiment_id)

    def trials(self) -> list[TrialRow]:
        """The experiment's trials (id, request_id, parent_request_id, state, end_reason, ...)."""
        return self._trials

    def searcher_state(self) -> dict[str, Any]:
        """The search method's latest stored `state_dict()`."""
        return self._state.searcher_states.get(self._state.storage, self._record)

    def hparams(self) -> dict[int, dict[str, Any]]:
        """Each trial's hyperparameters, flattened to dotted names, by trial id."""
        stored = self._state.hparams.get(self._state.storage, self._record, [trial.id for trial in self._trials])
        return {trial_id: entry.flat for trial_id, entry in stored.items()}

    def best_validations(self) -> dict[int, float]:
        """Each trial's best value of the searcher metric, by trial id."""
        index = self._state.validations(self._record)
        with index.lock:
            return {trial_id: validations.best for trial_id, validations in index.trials.items()}


def searcher_view(state: DashboardState, experiment_id: int) -> dict[str, Any]:
    """{"kind": <searcher name>, "end_reasons": {reason: count}} plus what the search method's view adds."""
    search = SearchData(state, experiment_id)
    name = state.experiment(experiment_id).config.get("searcher", {}).get("name", "")
    view: dict[str, Any] = {"kind": name, "end_reasons": dict(sorted(
        Counter(trial.end_reason for trial in search.trials() if trial.end_reason is not None).items()))}
    view.update(search_method_view(name, search) or {})
    return view
