"""Benchmarks by name: the built-in ones, or a user's own class given as `module:Class`."""

from __future__ import annotations

import importlib
from pathlib import Path

from hpt_core.simulator.benchmarks import Benchmark, SimulationError
from hpt_core.simulator.hartmann import Hartmann
from hpt_core.simulator.lcbench import LCBench
from hpt_core.simulator.nasbench201 import NASBench201

BUILTIN_BENCHMARKS: dict[str, type[Benchmark]] = {"lcbench": LCBench, "nasbench201": NASBench201,
                                                  "hartmann": Hartmann}


def benchmark_class(name: str) -> type[Benchmark]:
    """The benchmark class named `name`: a built-in one, or `module:Class` (a `Benchmark` subclass)."""
    if name in BUILTIN_BENCHMARKS:
        return BUILTIN_BENCHMARKS[name]
    module_name, colon, class_name = name.partition(":")
    if not colon or not module_name or not class_name:
        raise SimulationError(f"no benchmark {name!r}; built in: {', '.join(BUILTIN_BENCHMARKS)}, "
                              "or your own as module:Class (a subclass of hpt_core.simulator.Benchmark)")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise SimulationError(f"cannot load the benchmark {name!r}: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, Benchmark)):
        raise SimulationError(f"the benchmark {name!r} is not a subclass of hpt_core.simulator.Benchmark")
    return cls


def load_benchmark(name: str, task: str | None = None, data_dir: str | Path | None = None) -> Benchmark:
    """The benchmark `name` on `task` (default: its first), with its data under `data_dir` (default:
    `$HPT_BENCHMARK_DATA`, else `../shared/benchmarks` beside the repository)."""
    return benchmark_class(name)(task, data_dir)
