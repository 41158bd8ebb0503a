"""Simulated search on benchmarks of recorded or surrogate learning curves (`hpt simulate`).

Choose a search method and its settings in seconds before spending GPU hours: `simulate()` runs
any search method against a `Benchmark` with N simulated workers in simulated time.

>>> from hpt_core import create_searcher
>>> from hpt_core.simulator import Benchmark, Evaluation, experiment_for, simulate
>>> class Decay(Benchmark):
...     name, metric = "decay", "loss"
...     def hyperparameters(self): return {"rate": {"type": "double", "minval": 0.1, "maxval": 1.0}}
...     def lengths(self): return tuple(range(1, 17))
...     def evaluate(self, hparams, length): return Evaluation({"loss": 1 / (1 + hparams["rate"] * length)},
...                                                             elapsed=30.0 * length)
>>> benchmark = Decay()
>>> config = experiment_for(benchmark, {"searcher": {"name": "random", "max_length": {"epochs": 16},
...                                                  "max_trials": 8}})
>>> result = simulate(create_searcher(config, seed=0), benchmark, workers=4)
>>> result.elapsed, len(result.trials), result.shut_down
(960.0, 8, True)
"""

from hpt_core.simulator.benchmarks import Benchmark, Evaluation, SimulationError, default_data_dir
from hpt_core.simulator.engine import Report, SimulatedTrial, SimulationResult, simulate
from hpt_core.simulator.experiment import experiment_for
from hpt_core.simulator.hartmann import Hartmann
from hpt_core.simulator.lcbench import LCBench
from hpt_core.simulator.nasbench201 import NASBench201
from hpt_core.simulator.registry import BUILTIN_BENCHMARKS, benchmark_class, load_benchmark

__all__ = [
    "BUILTIN_BENCHMARKS",
    "Benchmark",
    "Evaluation",
    "Hartmann",
    "LCBench",
    "NASBench201",
    "Report",
    "SimulatedTrial",
    "SimulationError",
    "SimulationResult",
    "benchmark_class",
    "default_data_dir",
    "experiment_for",
    "load_benchmark",
    "simulate",
]
