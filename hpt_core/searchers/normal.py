"""The standard normal distribution's CDF, density and quantile function on numpy arrays (numpy has no erf),
and the log of its expected improvement.

>>> import numpy as np
>>> [round(float(v), 4) for v in normal_cdf(np.array([-1.0, 0.0, 1.96]))]
[0.1587, 0.5, 0.975]
>>> [round(float(v), 3) for v in log_expected_improvement(np.array([-40.0, -5.0, 0.0, 2.0]))]
[-808.299, -16.744, -0.919, 0.697]
>>> [round(float(v), 4) for v in normal_quantile(np.array([0.01, 0.5, 0.975]))]
[-2.3263, 0.0, 1.96]
"""

from __future__ import annotations

import math

import numpy as np

_LOW_TAIL = 0.02425
"""Below this probability (and above 1 minus it) the quantile uses its tail approximation."""
_CENTRAL_NUMERATOR = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
                      -3.066479806614716e+01, 2.506628277459239e+00)
_CENTRAL_DENOMINATOR = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                        6.680131188771972e+01, -1.328068155288572e+01, 1.0)
_TAIL_NUMERATOR = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
                   4.374664141464968e+00, 2.938163982698783e+00)
_TAIL_DENOMINATOR = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00,
                     1.0)
_ASYMPTOTIC_BELOW = -10.0
"""Below this the expected improvement comes from its asymptotic series (the exact sum cancels)."""


def normal_cdf(value: np.ndarray) -> np.ndarray:
    """The standard normal CDF, through erf (Abramowitz and Stegun 7.1.26, error below 1.5e-7)."""
    x = np.abs(value) / math.sqrt(2)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(value) * erf)


def normal_pdf(value: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * value * value) / math.sqrt(2 * math.pi)


def normal_quantile(probability: np.ndarray) -> np.ndarray:
    """The inverse of `normal_cdf` for probabilities in (0, 1) (Acklam's rational approximation, relative error
    below 1.2e-9)."""
    probability = np.asarray(probability, dtype=float)
    quantile = np.empty_like(probability)
    low, high = probability < _LOW_TAIL, probability > 1 - _LOW_TAIL
    central = ~(low | high)
    q = probability[central] - 0.5
    r = q * q
    quantile[central] = q * np.polyval(_CENTRAL_NUMERATOR, r) / np.polyval(_CENTRAL_DENOMINATOR, r)
    for tail, side, sign in ((low, probability[low], 1.0), (high, 1 - probability[high], -1.0)):
        q = np.sqrt(-2 * np.log(side))
        quantile[tail] = sign * np.polyval(_TAIL_NUMERATOR, q) / np.polyval(_TAIL_DENOMINATOR, q)
    return quantile


def log_expected_improvement(standard: np.ndarray) -> np.ndarray:
    """log(z Φ(z) + φ(z)): the log of the expected improvement, in standard deviations, of a normal whose mean lies
    -z of them short of the threshold. Far into the lower tail z Φ(z) and φ(z) cancel (and underflow), so below
    `_ASYMPTOTIC_BELOW` it is log φ(z) - 2 log|z| + log(1 - 3/z² + 15/z⁴ - 105/z⁶), and above it Φ comes from
    math.erfc, accurate where Φ is tiny (`normal_cdf` is not)."""
    standard = np.asarray(standard, dtype=float)
    result = np.empty_like(standard)
    tail = standard < _ASYMPTOTIC_BELOW
    z = standard[tail]
    inverse = 1.0 / (z * z)
    series = 1 - 3 * inverse + 15 * inverse ** 2 - 105 * inverse ** 3
    result[tail] = -0.5 * z * z - 0.5 * math.log(2 * math.pi) - 2 * np.log(-z) + np.log(series)
    z = standard[~tail]
    cdf = 0.5 * np.array([math.erfc(-value / math.sqrt(2)) for value in z.tolist()])
    result[~tail] = np.log(z * cdf + normal_pdf(z))
    return result
