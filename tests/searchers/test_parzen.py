"""The Parzen estimator of `sampler: tpe` chooses its kernel widths from the observations themselves."""

from __future__ import annotations

import numpy as np

from hpt_core.searchers.parzen import WIDTH_FACTORS, ParzenEstimator

NO_CHOICES = np.zeros((40, 0), dtype=int)


def scott_width(numeric: np.ndarray) -> np.ndarray:
    """Scott's rule for numeric-only observations (the width of factor 1 where no floor applies)."""
    return numeric.std(axis=0, ddof=1) * len(numeric) ** (-1.0 / (numeric.shape[1] + 4))


def widths(numeric: np.ndarray) -> np.ndarray:
    return ParzenEstimator(numeric, NO_CHOICES[: len(numeric)], []).sigmas[0]


def test_clustered_observations_get_narrower_kernels_than_scotts_rule() -> None:
    """Two tight clusters far apart: Scott's rule sees one wide spread, the likelihood sees the clusters."""
    rng = np.random.default_rng(0)
    cluster = np.array([0.25, 0.6]) + 0.01 * rng.standard_normal((20, 2))
    numeric = np.vstack([cluster, cluster + 0.4])
    assert (widths(numeric) < 0.5 * scott_width(numeric)).all()


def test_evenly_spread_observations_get_wider_kernels_than_scotts_rule() -> None:
    numeric = np.random.default_rng(0).random((40, 2))
    assert (widths(numeric) > scott_width(numeric)).all()


def test_the_choice_is_among_the_factors_and_the_same_for_the_same_observations() -> None:
    rng = np.random.default_rng(3)
    numeric, categorical = rng.random((30, 3)), rng.integers(0, 4, (30, 2))
    first, again = (ParzenEstimator(numeric, categorical, [4, 4]) for _ in range(2))
    assert first.width_factor in WIDTH_FACTORS
    assert first.width_factor == again.width_factor and (first.sigmas == again.sigmas).all()


def test_few_observations_or_only_categorical_ones_keep_scotts_rule() -> None:
    two = np.array([[0.2], [0.25]])
    assert ParzenEstimator(two, np.zeros((2, 0), dtype=int), []).width_factor == 1.0
    categorical = np.random.default_rng(0).integers(0, 5, (30, 6))
    assert ParzenEstimator(np.zeros((30, 0)), categorical, [5] * 6).width_factor == 1.0


def test_weights_share_the_mixture_and_equal_weights_change_nothing() -> None:
    numeric = np.array([[0.2], [0.8], [0.5], [0.35]])
    plain = ParzenEstimator(numeric, NO_CHOICES[:4], [])
    equal = ParzenEstimator(numeric, NO_CHOICES[:4], [], [2.0] * 4)
    assert np.allclose(plain.sigmas, equal.sigmas) and np.allclose(plain.weights, equal.weights)
    leaning = ParzenEstimator(numeric, NO_CHOICES[:4], [], [4.0, 1.0, 1.0, 1.0])
    near_heavy, near_light = leaning.log_density(np.array([[0.2], [0.8]]), NO_CHOICES[:2])
    assert near_heavy > near_light
    assert leaning.weights[0] == 4 * leaning.weights[1]
