"""A multivariate Parzen estimator over the unit cube and categorical choices, for the TPE sampler.

Every observation is one mixture component: a product of truncated normals on the numeric
dimensions (each scaled to [0, 1]) and of smoothed categorical distributions on the
categorical ones; one more component is the prior (a wide normal centred in the cube, uniform
choices), so that the density never vanishes. Bandwidths follow Scott's rule per dimension,
but never below 1/(n + 1) of the range for n observations (and `MIN_BANDWIDTH`): a few
observations close together must not collapse the density onto them, and the floor narrows
only as evidence grows.

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

MIN_BANDWIDTH = 0.03
"""The narrowest kernel on a numeric dimension, as a share of its range."""
PRIOR_SIGMA = 1.0
"""The prior component's standard deviation on every numeric dimension (the whole range)."""
RESAMPLE_ROUNDS = 8
"""Draws outside [0, 1] are drawn again this many times before being clipped to the range."""
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class ParzenEstimator:
    """The mixture density of `numeric` (n × d floats in [0, 1]) and `categorical` (n × c choice indices).

    `choices[j]` is the number of choices of categorical dimension j.
    """

    def __init__(self, numeric: np.ndarray, categorical: np.ndarray, choices: list[int]) -> None:
        count = len(numeric)
        dimensions = numeric.shape[1] + categorical.shape[1]
        self.weights = np.full(count + 1, 1.0 / (count + 1))
        self.means = np.vstack([numeric, np.full((1, numeric.shape[1]), 0.5)])
        bandwidth = _scott_bandwidth(numeric, dimensions)
        self.sigmas = np.vstack([np.tile(bandwidth, (count, 1)), np.full((1, numeric.shape[1]), PRIOR_SIGMA)])
        # per component: its log weight and the log normalisers of its truncated normals
        log_mass = np.log(_normal_cdf((1 - self.means) / self.sigmas) - _normal_cdf(-self.means / self.sigmas))
        self.log_scale = np.log(self.weights) - (np.log(self.sigmas) + _LOG_SQRT_2PI + log_mass).sum(axis=1)
        self.choice_probabilities = [_categorical_kernels(categorical[:, column], size, count)
                                     for column, size in enumerate(choices)]

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


def _scott_bandwidth(numeric: np.ndarray, dimensions: int) -> np.ndarray:
    """Per numeric dimension: the spread of the n observations × n^(-1/(dimensions+4)), within
    [max(1/(n+1), MIN_BANDWIDTH), 1]."""
    count = len(numeric)
    floor = max(1.0 / (count + 1), MIN_BANDWIDTH)
    if count < 2:
        return np.full(numeric.shape[1], floor)
    spread = numeric.std(axis=0, ddof=1) * count ** (-1.0 / (dimensions + 4))
    return np.clip(spread, floor, 1.0)


def _categorical_kernels(observed: np.ndarray, size: int, count: int) -> np.ndarray:
    """(count + 1) × size choice probabilities: each observation's own choice plus 1/(count+1) on every
    choice, normalised; the last row (the prior) uniform."""
    kernels = np.full((count + 1, size), 1.0 / (count + 1))
    kernels[np.arange(count), observed] += 1.0
    kernels[count] = 1.0
    return kernels / kernels.sum(axis=1, keepdims=True)


def _normal_cdf(value: np.ndarray) -> np.ndarray:
    """The standard normal CDF, through erf (Abramowitz and Stegun 7.1.26, error below 1.5e-7)."""
    x = np.abs(value) / math.sqrt(2)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(value) * erf)
