"""`searcher.fidelity: adaptive` — how far adaptive ASHA trusts a rung's ranking, measured as results arrive.

For each pair of consecutive rung lengths (low, high) the search pools, over all brackets, the
trials that reported at both, and measures how well the ranking at `low` predicts the ranking at
`high`: Spearman's rank correlation rho on those n trials. Those trials were promoted, so they are
the best of the low rung, and within so narrow a band even a good fidelity ranks poorly (on
NAS-Bench-201, 0.84 over all architectures, 0.38 within the top third). The estimate is therefore
made cautious, then widened back to the whole rung:

1. the lower end of one standard error of rho (Fisher's z: tanh(atanh(rho) - 1/sqrt(n - 3))), so
   that a few lucky pairs earn no trust, and 0 if that is negative;
2. corrected for the selection (Thorndike's case II): c = r u / sqrt(1 - r^2 + r^2 u^2), with u the
   spread of the whole low rung's ranks over the spread of the paired trials' ranks in it;
3. trust = clip(c / `TRUSTED_CORRELATION`, 0, 1); fewer than `MIN_PAIRS` pairs: full trust (ASHA
   as it is, until there is evidence).

The rung then promotes its top 1/divisor**trust: the top 1/divisor where it predicts (ASHA's
aggressiveness), everyone where it does not (training goes on as if the trials had started at
the next rung, and every pair measured there sharpens the estimate). Everything here is a pure
function of the recorded results.

>>> round(rank_correlation([(1, 10), (2, 20), (3, 30), (4, 25)]), 2)
0.8
>>> trust(1.0, 10, 1.0), trust(0.0, 10, 4.0), trust(0.9, 2, 1.0)
(1.0, 0.0, 1.0)
>>> trust(0.4, 20, 1.0) < trust(0.4, 20, 16.0)
True
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
"""A model (`sampler: tpe` or `gp`) is fitted only on rungs trusted at least this much (and on the top rung)."""
FIRST_MODEL_RESULTS = 5
"""With `fidelity: adaptive`, a model is fitted on a rung once it holds this many results."""
_MOST_CORRELATION = 0.999


def rank_correlation(pairs: list[tuple[float, float]]) -> float:
    """Spearman's rho of (low, high) pairs, ties given their average rank; 0 where a side is constant."""
    if len(pairs) < 2:
        return 0.0
    low, high = (_average_ranks(np.array(side, dtype=float)) for side in zip(*pairs))
    low, high = low - low.mean(), high - high.mean()
    scale = math.sqrt(float((low * low).sum() * (high * high).sum()))
    return float((low * high).sum() / scale) if scale > 0 else 0.0


def trust(correlation: float, pairs: int, selection: float) -> float:
    """How far to trust a rung (0 to 1) whose rank correlation with the next is `correlation` over `pairs`
    promoted trials, whose ranks in the rung spread `selection` times less than the whole rung's."""
    if pairs < MIN_PAIRS:
        return 1.0
    clipped = min(max(correlation, -_MOST_CORRELATION), _MOST_CORRELATION)
    lower = max(math.tanh(math.atanh(clipped) - 1.0 / math.sqrt(pairs - 3)), 0.0)
    widened = lower * selection / math.sqrt(1.0 - lower ** 2 + (lower * selection) ** 2) if lower > 0 else 0.0
    return min(widened / TRUSTED_CORRELATION, 1.0)


def pair_estimate(bracket_states: Iterable[dict[str, Any]], low: int, high: int) -> list[float]:
    """[rank correlation, trials, selection] of the trials that reported at lengths `low` and `high`, pooled over
    brackets (early exits, with no loss, left out); selection is the spread of every rank at `low` over the spread
    of those trials' ranks there (1 where it cannot be measured)."""
    at_low: dict[int, float] = {}
    at_high: dict[int, float] = {}
    for state in bracket_states:
        for length, rung in zip(state["rung_lengths"], state["rungs"]):
            if length in (low, high):
                target = at_low if length == low else at_high
                target.update({result["request_id"]: result["loss"] for result in rung if result["loss"] is not None})
    both = sorted(set(at_low) & set(at_high))
    correlation = rank_correlation([(at_low[key], at_high[key]) for key in both])
    ids = list(at_low)
    ranks = dict(zip(ids, _average_ranks(np.array([at_low[key] for key in ids], dtype=float))))
    paired_spread = float(np.std([ranks[key] for key in both])) if both else 0.0
    selection = float(np.std(list(ranks.values()))) / paired_spread if paired_spread > 0 else 1.0
    return [correlation, len(both), selection]


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0 .. n-1, each run of equal values given the mean of its ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks
