"""What users of other tuning tools write in hpt's experiment file, and what hpt calls it: hints added to the
"unknown field" and "unknown hyperparameter type" errors.

>>> field_hint("direction", "maximize")
'; hpt says `smaller_is_better: false` (Optuna and Ray Tune say direction/mode)'
>>> type_hint("choice")
'; hpt says `type: categorical` with its choices in `vals`'
"""

from __future__ import annotations

from typing import Any

_BUDGET = "; hpt says `max_trials` (Optuna's n_trials, Ray Tune's num_samples)"
_FIELDS = {
    "n_trials": _BUDGET,
    "num_samples": _BUDGET,
    "n_jobs": "; hpt says `max_concurrent_trials`",
    "max_concurrent": "; hpt says `max_concurrent_trials`",
}
_DIRECTIONS = {"minimize": "true", "min": "true", "maximize": "false", "max": "false"}

_TYPES = {
    "loguniform": "; hpt says `type: log` with exponents as minval/maxval and a base "
                  "(loguniform(1e-4, 1) is {type: log, base: 10, minval: -4, maxval: 0})",
    "uniform": "; hpt says `type: double` (minval, maxval)",
    "float": "; hpt says `type: double` (minval, maxval), or `type: log` for a log scale",
    "randint": "; hpt says `type: int` (minval, maxval, both included)",
    "choice": "; hpt says `type: categorical` with its choices in `vals`",
}


def field_hint(name: str, value: Any) -> str:
    """The hint for an unknown field `name` (given `value`) that another tool has, or ""."""
    if name in ("direction", "mode"):
        smaller = _DIRECTIONS.get(str(value).lower())
        if smaller is not None:
            return f"; hpt says `smaller_is_better: {smaller}` (Optuna and Ray Tune say direction/mode)"
        return "; hpt says `smaller_is_better: true` (minimize) or `false` (maximize)"
    return _FIELDS.get(name, "")


def type_hint(kind: Any) -> str:
    """The hint for a hyperparameter type another tool names `kind`, or ""."""
    return _TYPES.get(kind, "") if isinstance(kind, str) else ""
