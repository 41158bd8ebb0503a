"""`searcher.fidelity: adaptive` — how far adaptive ASHA trusts a rung's ranking, measured as results arrive.

For each pair of consecutive rung lengths (low, high) the search pools, over all brackets, the
trials that reported at both, and measures how well the ranking at `low` predicts the ranking at
`high`: Spearman's rank correlation rho on those n trials. It trusts a rung by the lower end of
one standard error of rho (Fisher's z: tanh(atanh(rho) - 1/sqrt(n - 3))), so that a few lucky
pairs do not earn trust:

- fewer than `MIN_PAIRS` pairs: full trust (ASHA as it is, until there is evidence);
- trust = clip(lower bound / `TRUSTED_CORRELATION`, 0, 1);
- the rung then promotes its top 1/divisor**trust: the top 1/divisor where it predicts
  (ASHA's aggressiveness), everyone where it does not (training goes on as if the trials had
  started at the next rung, and every pair measured there sharpens the estimate).

The pairs come only from promoted trials, so rho says how well a rung ranks its best trials:
exactly what a promotion decides. Everything here is a pure function of the recorded results.

>>> round(rank_correlation([(1, 10), (2, 20), (3, 30), (4, 25)]), 2)
0.8
>>> trust(rank_correlation([(float(i), float(i)) for i in range(10)]), 10), trust(0.0, 10), trust(0.9, 2)
(1.0, 0.0, 1.0)
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

MIN_PAIRS = 5
"""Below this many trials at both rungs a rung keeps full trust."""
TRUSTED_CORRELATION = 0.5
"""A rung whose rank correlation with the next is surely (one standard error) above this is fully trusted."""
MODEL_TRUST = 0.5
"""`sampler: tpe` fits its model only on rungs trusted at least this much (and on the top rung)."""
FIRST_MODEL_RESULTS = 5
"""With `fidelity: adaptive`, `sampler: tpe` fits its model on a rung once it holds this many results."""
_MOST_CORRELATION = 0.999


def rank_correlation(pairs: list[tuple[float, float]]) -> float:
    """Spearman's rho of (low, high) pairs, ties given their average rank; 0 where a side is constant."""
    if len(pairs) < 2:
        return 0.0
    low, high = (_average_ranks(np.array(side, dtype=float)) for side in zip(*pairs))
    low, high = low - low.mean(), high - high.mean()
    scale = math.sqrt(float((low * low).sum() * (high * high).sum()))
    return float((low * high).sum() / scale) if scale > 0 else 0.0


def trust(correlation: float, pairs: int) -> float:
    """How far to trust a rung (0 to 1) whose rank correlation with the next is `correlation` over `pairs` trials."""
    if pairs < MIN_PAIRS:
        return 1.0
    clipped = min(max(correlation, -_MOST_CORRELATION), _MOST_CORRELATION)
    lower = math.tanh(math.atanh(clipped) - 1.0 / math.sqrt(pairs - 3))
    return min(max(lower / TRUSTED_CORRELATION, 0.0), 1.0)


def pair_estimate(bracket_states: Iterable[dict[str, Any]], low: int, high: int) -> list[float]:
    """[rank correlation, trials] of the trials that reported at lengths `low` and `high`, pooled over brackets
    (early exits, with no loss, left out)."""
    at_low: dict[int, float] = {}
    at_high: dict[int, float] = {}
    for state in bracket_states:
        for length, rung in zip(state["rung_lengths"], state["rungs"]):
            if length in (low, high):
                target = at_low if length == low else at_high
                target.update({result["request_id"]: result["loss"] for result in rung if result["loss"] is not None})
    both = sorted(set(at_low) & set(at_high))
    return [rank_correlation([(at_low[key], at_high[key]) for key in both]), len(both)]


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0 .. n-1, each run of equal values given the mean of its ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks
