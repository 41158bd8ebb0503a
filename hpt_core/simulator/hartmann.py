"""Multi-fidelity Hartmann functions (`hartmann`): synthetic problems whose low fidelities are good, bad or terrible.

The Hartmann 3 and 6 functions (Dixon & Szegő 1978) on the unit cube, with a fidelity z =
length / 81 (four lengths, 3, 9, 27 and 81, one simulated second per unit) that blurs them as in the
multi-fidelity Hartmann problems of Kandasamy et al. (2017) and mf-prior-bench: at fidelity z

    loss(x, z) = -sum_i (alpha_i - bias (1 - z)) exp(-sum_j A_ij (x_j - P_ij)^2) + noise (1 - z) e(x, z)

with e a standard normal draw fixed by x and the length (the same configuration at the same
length always gives the same value). At z = 1 it is the exact function. The tasks are
`h3-good`, `h3-bad`, `h3-terrible` and the same with `h6-`: bias and noise (0.5, 0.1), (2, 0.4)
and (4, 0.8). With the terrible ones the low fidelities rank configurations almost at random,
or inverted; with the good ones they rank them nearly as the full length does. Computed here,
nothing is read or downloaded.

>>> benchmark = Hartmann("h3-good")
>>> round(benchmark.lookup({"x0": 0.114614, "x1": 0.555649, "x2": 0.852547}, 81).metrics["loss"], 4)
-3.8628
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from hpt_core.simulator.benchmarks import Benchmark, Evaluation

LENGTHS = (3, 9, 27, 81)
FULL_LENGTH = LENGTHS[-1]
SECONDS_PER_UNIT = 1.0
FIDELITY_QUALITY = {"good": (0.5, 0.1), "bad": (2.0, 0.4), "terrible": (4.0, 0.8)}
"""Per quality of the low fidelities: (bias, noise) at fidelity 0, both shrinking linearly to 0 at the full length."""

_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_FUNCTIONS = {
    3: (np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]]),
        1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]]),
        -3.86278),
    6: (np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                  [17, 8, 0.05, 10, 0.1, 14]]),
        1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]),
        -3.32237),
}


class Hartmann(Benchmark):
    """Hartmann 3 or 6 with low fidelities of a chosen quality; the metric `loss` is the function's value."""

    name: ClassVar[str] = "hartmann"
    tasks: ClassVar[tuple[str, ...]] = tuple(f"h{dimensions}-{quality}" for dimensions in _FUNCTIONS
                                             for quality in FIDELITY_QUALITY)
    metric: ClassVar[str] = "loss"
    smaller_is_better: ClassVar[bool] = True

    def __init__(self, task: str | None = None, data_dir: str | Path | None = None) -> None:
        super().__init__(task, data_dir)
        dimensions, _, quality = self.task.partition("-")
        self.weights, self.centres, self.minimum = _FUNCTIONS[int(dimensions[1:])]
        self.bias, self.noise = FIDELITY_QUALITY[quality]

    def hyperparameters(self) -> dict[str, Any]:
        return {f"x{index}": {"type": "double", "minval": 0.0, "maxval": 1.0} for index in range(len(self.centres[0]))}

    def lengths(self) -> tuple[int, ...]:
        return LENGTHS

    def evaluate(self, hparams: Mapping[str, Any], length: int) -> Evaluation:
        point = np.array([float(hparams[f"x{index}"]) for index in range(len(self.centres[0]))])
        blur = 1.0 - length / FULL_LENGTH
        bumps = np.exp(-(self.weights * (point - self.centres) ** 2).sum(axis=1))
        loss = -float(((_ALPHA - self.bias * blur) * bumps).sum())
        if blur > 0:
            loss += self.noise * blur * _fixed_normal(point, length)
        return Evaluation({"loss": loss}, elapsed=SECONDS_PER_UNIT * length)

    def best_value(self) -> float:
        return self.minimum

    def median_full_time(self) -> float:
        return SECONDS_PER_UNIT * FULL_LENGTH


def _fixed_normal(point: np.ndarray, length: int) -> float:
    """A standard normal draw determined by the point and the length."""
    seed = zlib.crc32(np.round(point, 12).tobytes() + length.to_bytes(4, "little"))
    return float(np.random.default_rng(seed).standard_normal())
