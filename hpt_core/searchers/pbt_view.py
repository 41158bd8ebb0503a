"""The dashboard's view of `pbt`: its lineage tree, from the trials' parents. Registered through the
`hpt_search_method_view` hook, as a plugin's search method registers its own view."""

from __future__ import annotations

from typing import Any

from hpt_core.hookspecs import hookimpl


@hookimpl
def hpt_search_method_view(name: str, search: Any) -> dict[str, Any] | None:
    if name != "pbt":
        return None
    return pbt_view(search.trials(), search.hparams(), search.best_validations())


def pbt_view(trials: list[Any], hparams: dict[int, dict[str, Any]], best: dict[int, float]) -> dict[str, Any]:
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
