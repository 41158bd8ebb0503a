"""The benchmark plugin: a search space, a fidelity and a lookup of recorded or surrogate curves.

A benchmark answers one question: trained to `length` with these hyperparameters, what are
the metrics, and how many simulated seconds did the training from length 0 take? Subclass
`Benchmark` to simulate searches on curves of your own, and pass it to `hpt simulate` as
`--benchmark module:Class`::

    class Parabola(Benchmark):
        name = "parabola"
        tasks = ("default",)
        metric = "loss"
        smaller_is_better = True

        def hyperparameters(self):
            return {"x": {"type": "double", "minval": -1.0, "maxval": 1.0}}

        def lengths(self):
            return tuple(range(1, 11))        # results after every epoch, 1..10

        def evaluate(self, hparams, length):
            return Evaluation({"loss": hparams["x"] ** 2 + 1 / length}, elapsed=60.0 * length)

        def best_value(self):
            return 0.1
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from hpt_core.hyperparameters import space_from_dict

DATA_ENVIRONMENT_VARIABLE = "HPT_BENCHMARK_DATA"
MEDIAN_SAMPLE_SIZE = 256
MEDIAN_SAMPLE_SEED = 0


class SimulationError(RuntimeError):
    """A simulation cannot go on: a length the benchmark has no results for, missing data, a bad setting."""


@dataclass(frozen=True)
class Evaluation:
    """The metrics after training to some length, and the simulated seconds that training took from length 0."""

    metrics: Mapping[str, float]
    elapsed: float = field(default=0.0)


def default_data_dir() -> Path:
    """`$HPT_BENCHMARK_DATA`, else `../shared/benchmarks` beside the repository that holds hpt_core."""
    configured = os.environ.get(DATA_ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"


def require_file(path: Path, benchmark: str) -> Path:
    """`path` if it exists, else a SimulationError saying where the data was looked for and how to point elsewhere."""
    if not path.is_file():
        raise SimulationError(f"the {benchmark} benchmark data is missing: no file {path}; pass --data DIR "
                              f"(the folder holding yahpo/ and nasbench201/) or set {DATA_ENVIRONMENT_VARIABLE}")
    return path


class Benchmark(abc.ABC):
    """Base class of benchmarks: recorded or surrogate learning curves on which searches are simulated.

    Class attributes: `name` (as given to `--benchmark`), `tasks` (the first is the default),
    `metric` and `smaller_is_better` (the metric a search should optimise), `unit` (of lengths).
    Subclasses implement `hyperparameters()`, `lengths()`, `evaluate()` and may override
    `best_value()` (for regret) and `median_full_time()`.
    """

    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ("default",)
    metric: ClassVar[str] = ""
    smaller_is_better: ClassVar[bool] = True
    unit: ClassVar[str] = "epochs"

    def __init__(self, task: str | None = None, data_dir: str | Path | None = None) -> None:
        task = self.tasks[0] if task is None else str(task)
        if task not in self.tasks:
            raise SimulationError(f"the {self.name} benchmark has no task {task!r}; tasks: {', '.join(self.tasks)}")
        self.task = task
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()

    # --- what a benchmark provides -----------------------------------------------------------------

    @abc.abstractmethod
    def hyperparameters(self) -> dict[str, Any]:
        """The search space as the `hyperparameters` section of an experiment file."""

    @abc.abstractmethod
    def lengths(self) -> tuple[int, ...]:
        """The lengths (in `unit`, ascending) at which there are results; the last is the full training."""

    @abc.abstractmethod
    def evaluate(self, hparams: Mapping[str, Any], length: int) -> Evaluation:
        """The metrics after training `hparams` to `length` (one of `lengths()`), and the seconds taken from 0.

        `elapsed` must not decrease as `length` grows. Raise `hpt_core.InvalidHP` for a
        configuration that cannot be trained.
        """

    def best_value(self) -> float | None:
        """The best value of `metric` known for the task (regret is measured against it), if known."""
        return None

    def median_full_time(self) -> float:
        """The median simulated seconds to train a random configuration to the full length.

        The default evaluates `MEDIAN_SAMPLE_SIZE` configurations drawn with a fixed seed.
        """
        space = space_from_dict(self.hyperparameters())
        rng = np.random.default_rng(MEDIAN_SAMPLE_SEED)
        full = self.max_length
        return float(np.median([self.evaluate(space.sample(rng), full).elapsed for _ in range(MEDIAN_SAMPLE_SIZE)]))

    # --- derived -----------------------------------------------------------------------------------

    @property
    def max_length(self) -> int:
        return self.lengths()[-1]

    def lookup(self, hparams: Mapping[str, Any], length: int) -> Evaluation:
        """`evaluate()` after checking that the benchmark has results at `length`."""
        available = self.lengths()
        if length not in available:
            raise SimulationError(f"the {self.name} benchmark (task {self.task}) has results only at "
                                  f"{describe_lengths(available)} {self.unit}; a search asked for {length}")
        return self.evaluate(hparams, length)

    def regret(self, value: float) -> float | None:
        """How far `value` is from the best known value (≥ 0 when the best known is the true best), if known."""
        best = self.best_value()
        if best is None:
            return None
        return value - best if self.smaller_is_better else best - value

    def describe(self) -> str:
        return f"{self.name} task {self.task}"


def describe_lengths(lengths: tuple[int, ...]) -> str:
    """`1..52` for a run of consecutive lengths, else the lengths listed (`12, 200`)."""
    if len(lengths) > 3 and list(lengths) == list(range(lengths[0], lengths[-1] + 1)):
        return f"{lengths[0]}..{lengths[-1]}"
    return ", ".join(map(str, lengths))
