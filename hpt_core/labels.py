"""How trials are named where users read them: by id (unique in the storage) and by number within their
experiment (the search method's request id: 1 for the experiment's first trial)."""


def trial_label(trial_id: int, number: int, experiment_id: int | None = None) -> str:
    """`20 (#3)`, or `20 (#3 in experiment 2)` when the experiment is not clear from the context.

    >>> trial_label(20, 3), trial_label(20, 3, 2)
    ('20 (#3)', '20 (#3 in experiment 2)')
    """
    within = "" if experiment_id is None else f" in experiment {experiment_id}"
    return f"{trial_id} (#{number}{within})"
