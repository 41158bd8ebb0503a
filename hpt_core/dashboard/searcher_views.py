"""The search method's own view of an experiment: ASHA's brackets and rungs, PBT's lineage tree.

ASHA's view comes from the searcher state the controller stores after every event (the brackets'
rungs with their results, and where each trial is); PBT's from the trials' parents.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hpt_core.dashboard.state import DashboardState
from hpt_core.storage import queries
from hpt_core.storage.queries import TrialRow


def searcher_view(state: DashboardState, experiment_id: int) -> dict[str, Any]:
    """{"kind": <searcher name>, "end_reasons": {reason: count}} plus, for ASHA and PBT, their structure."""
    record = state.experiment(experiment_id)
    name = record.config.get("searcher", {}).get("name", "")
    trials = queries.trial_rows(state.storage, experiment_id)
    view: dict[str, Any] = {"kind": name, "end_reasons": dict(sorted(
        Counter(trial.end_reason for trial in trials if trial.end_reason is not None).items()))}
    if name == "adaptive_asha":
        view.update(asha_view(state.searcher_states.get(state.storage, record), trials))
    elif name == "pbt":
        index = state.validations(record)
        with index.lock:
            best = {trial_id: validations.best for trial_id, validations in index.trials.items()}
        hparams = state.hparams.get(state.storage, record, [trial.id for trial in trials])
        view.update(pbt_view(trials, {trial_id: entry.flat for trial_id, entry in hparams.items()}, best))
    return view


def asha_view(searcher_state: dict[str, Any], trials: list[TrialRow]) -> dict[str, Any]:
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


def pbt_view(trials: list[TrialRow], hparams: dict[int, dict[str, Any]], best: dict[int, float]) -> dict[str, Any]:
    """The lineage: a node per trial (generation 0 for the first population, a parent's + 1 for a child) and an
    edge per parent -> child with the (flattened) hyperparameters that changed ({name: [parent's, child's]})."""
    by_request = {trial.request_id: trial for trial in trials}
    generations: dict[int, int] = {}
    for trial in sorted(trials, key=lambda trial: trial.request_id):
        parent = by_request.get(trial.parent_request_id) if trial.parent_request_id is not None else None
        generations[trial.request_id] = 0 if parent is None else generations.get(parent.request_id, 0) + 1
    nodes = [{"trial_id": trial.id, "request_id": trial.request_id, "generation": generations[trial.request_id],
              "hparams": hparams.get(trial.id, {}), "best_validation": best.get(trial.id), "state": trial.state,
              "end_reason": trial.end_reason}
             for trial in trials]
    edges = []
    for trial in trials:
        parent = by_request.get(trial.parent_request_id) if trial.parent_request_id is not None else None
        if parent is None:
            continue
        old, new = hparams.get(parent.id, {}), hparams.get(trial.id, {})
        changed = {name: [old.get(name), new.get(name)] for name in sorted(old.keys() | new.keys())
                   if old.get(name) != new.get(name)}
        edges.append({"parent_trial_id": parent.id, "child_trial_id": trial.id, "changed": changed})
    return {"nodes": nodes, "edges": edges}
