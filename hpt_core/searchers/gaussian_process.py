"""Gaussian-process regression over the unit cube and categorical choices, for the GP sampler (`searchers/gp.py`).

The kernel is a Matérn 5/2 with one lengthscale per numeric dimension (each scaled to [0, 1]),
times exp(-Σ [a_j ≠ b_j] / l_j) over the categorical ones (a choice differs or it does not), times
a signal variance; observations carry Gaussian noise. Its hyperparameters (their logarithms) are
the most probable under the observations and weak log-normal priors (lengthscales about half the
range, noise about 5% of the signal), found by `FIT_STEPS` steps of Adam on the exact gradient of
the log marginal likelihood, from a given start (the last fit's, so refits are short). All of it
is deterministic: the same observations and start give the same model.

>>> import numpy as np
>>> points = np.array([[0.1], [0.4], [0.5], [0.9]])
>>> model = GaussianProcess(points, np.zeros((4, 0), dtype=int), np.array([1.0, -0.5, -1.0, 0.5]))
>>> model.fit(40)
>>> mean, sd = model.predict(np.array([[0.45], [0.1]]), np.zeros((2, 0), dtype=int))
>>> bool(mean[0] < mean[1]), bool(sd[0] < 0.5)
(True, True)
"""

from __future__ import annotations

import math

import numpy as np

FIT_STEPS = 40
"""Adam steps of a first fit; a refit from the previous hyperparameters takes `REFIT_STEPS`."""
REFIT_STEPS = 15
LEARNING_RATE = 0.1
LENGTH_PRIOR = (math.log(0.5), 1.0)
"""Mean and standard deviation of every log lengthscale's normal prior."""
NOISE_PRIOR = (math.log(0.05), 1.5)
"""Mean and standard deviation of the log noise variance's normal prior (targets are standardised)."""
SIGNAL_PRIOR = (0.0, 1.0)
LOG_BOUNDS = (math.log(1e-3), math.log(1e3))
"""Every hyperparameter (lengthscales, signal and noise variance) stays within these."""
JITTER = 1e-6
_SQRT5 = math.sqrt(5)


class GaussianProcess:
    """The posterior of a GP given `targets` at `numeric` (n × d floats in [0, 1]) and `categorical` (n × c choice
    indices); `log_hyperparameters`: d + c log lengthscales, the log signal and the log noise variance (by default
    a fixed start until `fit`: numeric lengthscales 0.3 of the range, categorical ones 1, the priors' signal and
    noise)."""

    def __init__(self, numeric: np.ndarray, categorical: np.ndarray, targets: np.ndarray,
                 log_hyperparameters: list[float] | None = None) -> None:
        self.numeric, self.categorical, self.targets = numeric, categorical, targets
        self.d, self.c = numeric.shape[1], categorical.shape[1]
        self.log_hyperparameters = (np.array(log_hyperparameters, dtype=float) if log_hyperparameters is not None
                                    else np.concatenate([np.full(self.d, math.log(0.3)), np.zeros(self.c),
                                                         [SIGNAL_PRIOR[0], NOISE_PRIOR[0]]]))
        self._cholesky: np.ndarray | None = None  # conditioned on first prediction, once the hyperparameters are set

    # --- fitting -------------------------------------------------------------------------------------

    def fit(self, steps: int) -> None:
        """Move the hyperparameters `steps` Adam steps up the log posterior; keep the best seen."""
        squared = np.moveaxis((self.numeric[:, None, :] - self.numeric[None, :, :]) ** 2, 2, 0)
        differs = np.moveaxis(self.categorical[:, None, :] != self.categorical[None, :, :], 2, 0).astype(float)
        theta = self.log_hyperparameters.copy()
        best, best_score = theta.copy(), -math.inf
        moment, second = np.zeros_like(theta), np.zeros_like(theta)
        for step in range(1, steps + 1):
            try:
                score, gradient = self._log_posterior(theta, squared, differs)
            except np.linalg.LinAlgError:
                break
            if score > best_score:
                best, best_score = theta.copy(), score
            moment = 0.9 * moment + 0.1 * gradient
            second = 0.999 * second + 0.001 * gradient ** 2
            theta = theta + LEARNING_RATE * (moment / (1 - 0.9 ** step)) / (np.sqrt(second / (1 - 0.999 ** step))
                                                                              + 1e-8)
            theta = np.clip(theta, *LOG_BOUNDS)
        self.log_hyperparameters = best
        self._cholesky = None

    def _log_posterior(self, theta: np.ndarray, squared: np.ndarray, differs: np.ndarray
                       ) -> tuple[float, np.ndarray]:
        """The log marginal likelihood plus the log priors at `theta`, and its gradient."""
        lengths = np.exp(theta[:self.d + self.c])
        signal, noise = math.exp(theta[-2]), math.exp(theta[-1])
        scaled = squared / lengths[:self.d, None, None] ** 2
        root = _SQRT5 * np.sqrt(scaled.sum(axis=0))
        overlap = np.exp(-(differs / lengths[self.d:, None, None]).sum(axis=0)) if self.c else 1.0
        decay = signal * np.exp(-root) * overlap
        covariance = decay * (1 + root + root ** 2 / 3)
        cholesky = np.linalg.cholesky(covariance + (noise + JITTER) * np.eye(len(self.targets)))
        inverse_factor = np.linalg.inv(cholesky)
        inverse = inverse_factor.T @ inverse_factor
        alpha = inverse @ self.targets
        score = -0.5 * self.targets @ alpha - np.log(np.diag(cholesky)).sum()
        outer = np.outer(alpha, alpha) - inverse  # d(score)/dK = outer / 2
        gradient = np.empty_like(theta)
        gradient[:self.d] = 0.5 * np.einsum("ijk,jk->i", scaled, outer * decay * (5 / 3) * (1 + root))
        gradient[self.d:self.d + self.c] = 0.5 * np.einsum("ijk,jk->i", differs, outer * covariance) / lengths[self.d:]
        gradient[-2] = 0.5 * (outer * covariance).sum()
        gradient[-1] = 0.5 * np.trace(outer) * noise
        for index, (mean, sd) in ((slice(0, self.d + self.c), LENGTH_PRIOR), (slice(-2, -1), SIGNAL_PRIOR),
                                  (slice(-1, None), NOISE_PRIOR)):
            score -= 0.5 * float(((theta[index] - mean) ** 2).sum()) / sd ** 2
            gradient[index] -= (theta[index] - mean) / sd ** 2
        return float(score), gradient

    # --- predicting ----------------------------------------------------------------------------------

    def predict(self, numeric: np.ndarray, categorical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The posterior mean and standard deviation (of the noiseless function) at each point."""
        if self._cholesky is None:
            self._condition()
        cross = self._kernel(numeric, categorical, self.numeric, self.categorical)
        mean = cross @ self._alpha
        solved = np.linalg.solve(self._cholesky, cross.T)
        variance = math.exp(self.log_hyperparameters[-2]) - (solved * solved).sum(axis=0)
        return mean, np.sqrt(np.maximum(variance, 1e-12))

    def with_fantasies(self, numeric: np.ndarray, categorical: np.ndarray) -> GaussianProcess:
        """This posterior also conditioned on its own mean at the given points (pending evaluations: the mean
        stays, the uncertainty there shrinks, so the next proposal looks elsewhere)."""
        if not len(numeric):
            return self
        mean, _ = self.predict(numeric, categorical)
        return GaussianProcess(np.vstack([self.numeric, numeric]), np.vstack([self.categorical, categorical]),
                               np.concatenate([self.targets, mean]), list(self.log_hyperparameters))

    def _condition(self) -> None:
        noise = math.exp(self.log_hyperparameters[-1]) + JITTER
        covariance = self._kernel(self.numeric, self.categorical, self.numeric, self.categorical)
        self._cholesky = np.linalg.cholesky(covariance + noise * np.eye(len(self.targets)))
        self._alpha = np.linalg.solve(self._cholesky.T, np.linalg.solve(self._cholesky, self.targets))

    def _kernel(self, numeric_a: np.ndarray, categorical_a: np.ndarray, numeric_b: np.ndarray,
                categorical_b: np.ndarray) -> np.ndarray:
        lengths = np.exp(self.log_hyperparameters[:self.d + self.c])
        scaled = (numeric_a[:, None, :] - numeric_b[None, :, :]) / lengths[:self.d]
        root = _SQRT5 * np.sqrt((scaled * scaled).sum(axis=2))
        matern = math.exp(self.log_hyperparameters[-2]) * (1 + root + root ** 2 / 3) * np.exp(-root)
        if not self.c:
            return matern
        differs = categorical_a[:, None, :] != categorical_b[None, :, :]
        return matern * np.exp(-(differs / lengths[self.d:]).sum(axis=2))
