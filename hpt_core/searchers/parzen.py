"""A multivariate Parzen estimator over the unit cube and categorical choices, for the TPE sampler.

Every observation is one mixture component, of the weight the caller gives it (all alike by
default; the widths below count each observation by its weight): a product of truncated normals
on the numeric dimensions (each scaled to [0, 1]) and of smoothed categorical distributions on the
categorical ones; one more component is the prior (a wide normal centred in the cube, uniform
choices), so that the density never vanishes. Bandwidths are Scott's rule per dimension times
one factor of `WIDTH_FACTORS`, the one under which the observations are likeliest left out
one at a time (each scored by the others and the prior: narrow where they cluster, wide where
they spread), but never below 1/(n + 1) of the range for n observations (their effective
number (Σw)²/Σw² when weighted; and `MIN_BANDWIDTH`): a few observations close together must
not collapse the density onto them, and the floor narrows only as evidence grows.

>>> import numpy as np
>>> estimator = ParzenEstimator(np.array([[0.2], [0.25]]), np.zeros((2, 0), dtype=int), [])
>>> samples, _ = estimator.sample(np.random.default_rng(0), 4)
>>> bool(((0 <= samples) & (samples <= 1)).all())
True
>>> near, far = estimator.log_density(np.array([[0.22], [0.9]]), np.zeros((2, 0), dtype=int))
>>> bool(near > far)
True
"""

from __future__ import annotations

import math

import numpy as np

from hpt_core.searchers.normal import normal_cdf

MIN_BANDWIDTH = 0.03
"""The narrowest kernel on a numeric dimension, as a share of its range."""
PRIOR_SIGMA = 1.0
"""The prior component's standard deviation on every numeric dimension (the whole range)."""
RESAMPLE_ROUNDS = 8
"""Draws outside [0, 1] are drawn again this many times before being clipped to the range."""
WIDTH_FACTORS = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0)
"""The multiples of Scott's widths (steps of about √2) among which a density chooses by leave-one-out likelihood."""
MAX_HELD_OUT = 100
"""At most this many observations (an even sample) are held out to choose the width."""
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class ParzenEstimator:
    """The mixture density of `numeric` (n × d floats in [0, 1]) and `categorical` (n × c choice indices).

    `choices[j]` is the number of choices of categorical dimension j; `weights`, each observation's
    weight in the mixture (all alike if None), the prior weighing as an average observation.
    """

    def __init__(self, numeric: np.ndarray, categorical: np.ndarray, choices: list[int],
                 weights: list[float] | None = None) -> None:
        count = len(numeric)
        dimensions = numeric.shape[1] + categorical.shape[1]
        observed = np.ones(count) if weights is None else np.asarray(weights, dtype=float)
        with_prior = np.append(observed, observed.mean() if count else 1.0)
        self.weights = with_prior / with_prior.sum()
        effective = observed.sum() ** 2 / (observed ** 2).sum() if count else 0.0
        self.means = np.vstack([numeric, np.full((1, numeric.shape[1]), 0.5)])
        self.choice_probabilities = [_categorical_kernels(categorical[:, column], size, count)
                                     for column, size in enumerate(choices)]
        spread = _scott_spread(numeric, dimensions, observed)
        self.width_factor = self._likeliest_factor(numeric, categorical, spread, with_prior, effective)
        bandwidth = _clip_bandwidth(self.width_factor * spread, effective)
        self.sigmas = np.vstack([np.tile(bandwidth, (count, 1)), np.full((1, numeric.shape[1]), PRIOR_SIGMA)])
        self.log_scale = np.log(self.weights) + _log_normalisers(self.means, self.sigmas)

    def _likeliest_factor(self, numeric: np.ndarray, categorical: np.ndarray, spread: np.ndarray,
                          weights: np.ndarray, effective: float) -> float:
        """The factor of `WIDTH_FACTORS` whose widths give the observations the largest leave-one-out log
        likelihood: each of (an even sample of at most `MAX_HELD_OUT`) observations scored, by its weight, by
        the mixture of the others and the prior (`weights`: the n observations' and the prior's). 1 (Scott's
        rule) with fewer than 3 observations or no numeric dimension."""
        count = len(numeric)
        if count < 3 or numeric.shape[1] == 0:
            return 1.0
        held_out = np.arange(0, count, math.ceil(count / MAX_HELD_OUT))
        squared = (numeric[held_out][:, None, :] - self.means[None, :, :]) ** 2
        fixed = np.tile(np.log(weights), (len(held_out), 1))  # what the widths do not change
        for column, probabilities in enumerate(self.choice_probabilities):
            fixed += np.log(probabilities[:, categorical[held_out, column]]).T
        prior_sigmas = np.full((1, numeric.shape[1]), PRIOR_SIGMA)
        fixed[:, -1] += (_log_normalisers(self.means[-1:], prior_sigmas)[0]
                         - 0.5 * squared[:, -1].sum(axis=1) / PRIOR_SIGMA ** 2)
        fixed[np.arange(len(held_out)), held_out] = -np.inf
        best, best_score = 1.0, -math.inf
        for factor in WIDTH_FACTORS:
            bandwidth = _clip_bandwidth(factor * spread, effective)
            per_component = fixed.copy()
            per_component[:, :-1] += (_log_normalisers(numeric, np.broadcast_to(bandwidth, numeric.shape))[None, :]
                                      - 0.5 * squared[:, :-1] @ bandwidth ** -2)
            largest = per_component.max(axis=1, keepdims=True)
            log_likelihoods = largest[:, 0] + np.log(np.exp(per_component - largest).sum(axis=1))
            score = float((weights[held_out] * log_likelihoods).sum())
            if score > best_score:
                best, best_score = factor, score
        return best

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """`size` draws: (numeric in [0, 1], categorical indices)."""
        components = rng.choice(len(self.weights), size=size, p=self.weights)
        means, sigmas = self.means[components], self.sigmas[components]
        numeric = means + sigmas * rng.standard_normal(means.shape)
        for _ in range(RESAMPLE_ROUNDS):
            outside = (numeric < 0) | (numeric > 1)
            if not outside.any():
                break
            numeric[outside] = means[outside] + sigmas[outside] * rng.standard_normal(int(outside.sum()))
        numeric = np.clip(numeric, 0.0, 1.0)
        categorical = np.zeros((size, len(self.choice_probabilities)), dtype=int)
        for column, probabilities in enumerate(self.choice_probabilities):
            cumulative = np.cumsum(probabilities[components], axis=1)
            draws = rng.random(size)[:, None]
            categorical[:, column] = np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)
        return numeric, categorical

    def log_density(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """The log density at each point (rows of `numeric` and `categorical`)."""
        scaled = (numeric[:, None, :] - self.means[None, :, :]) / self.sigmas[None, :, :]
        per_component = self.log_scale[None, :] - 0.5 * np.einsum("ijk,ijk->ij", scaled, scaled)
        for column, probabilities in enumerate(self.choice_probabilities):
            per_component += np.log(probabilities[:, categorical[:, column]]).T
        largest = per_component.max(axis=1, keepdims=True)
        return (largest + np.log(np.exp(per_component - largest).sum(axis=1, keepdims=True)))[:, 0]


def _scott_spread(numeric: np.ndarray, dimensions: int, weights: np.ndarray) -> np.ndarray:
    """Scott's rule per numeric dimension: the (weighted, unbiased) spread of the observations ×
    n^(-1/(dimensions+4)), n their effective number (Σw)²/Σw² (0 with fewer than 2 observations)."""
    if len(numeric) < 2:
        return np.zeros(numeric.shape[1])
    total, squares = weights.sum(), (weights ** 2).sum()
    mean = weights @ numeric / total
    variance = weights @ (numeric - mean) ** 2 / (total - squares / total)
    return np.sqrt(variance) * (total ** 2 / squares) ** (-1.0 / (dimensions + 4))


def _clip_bandwidth(bandwidth: np.ndarray, count: float) -> np.ndarray:
    """`bandwidth` within [max(1/(n+1), MIN_BANDWIDTH), 1] for n (effective) observations."""
    return np.clip(bandwidth, max(1.0 / (count + 1), MIN_BANDWIDTH), 1.0)


def _log_normalisers(means: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Per component: minus the log normalisers of its truncated normals on [0, 1], summed over dimensions."""
    log_mass = np.log(normal_cdf((1 - means) / sigmas) - normal_cdf(-means / sigmas))
    return -(np.log(sigmas) + _LOG_SQRT_2PI + log_mass).sum(axis=1)


def _categorical_kernels(observed: np.ndarray, size: int, count: int) -> np.ndarray:
    """(count + 1) × size choice probabilities: each observation's own choice plus 1/(count+1) on every
    choice, normalised; the last row (the prior) uniform."""
    kernels = np.full((count + 1, size), 1.0 / (count + 1))
    kernels[np.arange(count), observed] += 1.0
    kernels[count] = 1.0
    return kernels / kernels.sum(axis=1, keepdims=True)
