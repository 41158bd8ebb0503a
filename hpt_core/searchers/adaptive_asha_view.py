"""The dashboard's view of `adaptive_asha`: its brackets and rungs, from the search method's stored state
(the brackets' rungs with their results, and where each trial is). Registered through the
`hpt_search_method_view` hook, as a plugin's search method registers its own view."""

from __future__ import annotations

from typing import Any

from hpt_core.hookspecs import hookimpl


@hookimpl
def hpt_search_method_view(name: str, search: Any) -> dict[str, Any] | None:
    if name != "adaptive_asha":
        return None
    return asha_view(search.searcher_state(), search.trials())


def asha_view(searcher_state: dict[str, Any], trials: list[Any]) -> dict[str, Any]:
    """Per bracket and rung: how many trials reported there (`reached`), exited early while training towards
    it (`exited`), were promoted from it, wait there, train towards it, or stopped there; and per trial its
    bracket, rung and status."""
    by_request = {trial.request_id: trial for trial in trials}
    brackets, placed = [], []
    for index, bracket in enumerate(searcher_state.get("bracket_states", [])):
        rungs = []
        for rung_index, (length, results) in enumerate(zip(bracket["rung_lengths"], bracket["rungs"])):
            at_rung = [trial for trial in bracket["trials"].values() if trial["rung"] == rung_index]
            promoted = {result["request_id"] for result in results if result["promoted"]}
            rungs.append({
                "rung": rung_index, "length": length,
                "reached": sum(result["loss"] is not None for result in results),
                "exited": sum(result["loss"] is None for result in results),
                "promoted": len(promoted),
                "waiting": sum(trial["status"] == "waiting" for trial in at_rung),
                "training": sum(trial["status"] == "training" for trial in at_rung),
                "stopped_here": sum(trial["status"] == "closed" for trial in at_rung),
            })
        brackets.append({"bracket": index, "max_trials": bracket["max_trials"], "rungs": rungs})
        for request_id, trial in bracket["trials"].items():
            stored = by_request.get(int(request_id))
            placed.append({
                "trial_id": None if stored is None else stored.id, "request_id": int(request_id), "bracket": index,
                "rung": trial["rung"], "rung_length": bracket["rung_lengths"][trial["rung"]],
                "status": trial["status"], "exited": trial["exited"], "invalid": trial["invalid"],
                "state": None if stored is None else stored.state,
                "end_reason": None if stored is None else stored.end_reason,
            })
    return {"brackets": brackets, "trials": sorted(placed, key=lambda entry: entry["request_id"])}
