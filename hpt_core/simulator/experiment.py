"""An experiment file for a benchmark: the benchmark fills in what the file leaves out, and checks the rest.

A file without `hyperparameters` gets the benchmark's search space; a `searcher` without
`metric` (or `smaller_is_better`) gets the benchmark's. Named hyperparameters must be exactly
the benchmark's (give a constant to fix one), and every length of the searcher must be in the
benchmark's unit and be a length it has results for.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from hpt_core.config import ExperimentConfig, Length
from hpt_core.errors import ConfigError, Problem
from hpt_core.hyperparameters import space_from_dict
from hpt_core.plugins import load_config
from hpt_core.simulator.benchmarks import Benchmark, describe_lengths
from hpt_core.space import PATH_SEPARATOR, Categorical, Const, Hyperparameter, Log


def experiment_for(benchmark: Benchmark, data: Mapping[str, Any], source: str | None = None) -> ExperimentConfig:
    """Validate the experiment file `data` (a parsed mapping) for `benchmark`, filling in its space and metric.

    >>> from hpt_core.simulator.benchmarks import Benchmark, Evaluation
    >>> class Line(Benchmark):
    ...     name, metric = "line", "loss"
    ...     def hyperparameters(self): return {"x": {"type": "double", "minval": 0.0, "maxval": 1.0}}
    ...     def lengths(self): return (1, 2, 4)
    ...     def evaluate(self, hparams, length): return Evaluation({"loss": hparams["x"] / length}, 10.0 * length)
    >>> config = experiment_for(Line(), {"searcher": {"name": "random", "max_length": {"epochs": 4}, "max_trials": 8}})
    >>> config.searcher.metric, sorted(config.hyperparameters)
    ('loss', ['x'])
    """
    if not isinstance(data, Mapping):
        raise ConfigError([Problem("", "an experiment config must be a mapping of fields", type(data).__name__)],
                          source)
    data = copy.deepcopy(dict(data))
    if not data.get("hyperparameters"):
        data["hyperparameters"] = benchmark.hyperparameters()
    searcher = data.get("searcher")
    if isinstance(searcher, dict) and "metric" not in searcher:
        searcher["metric"] = benchmark.metric
        searcher.setdefault("smaller_is_better", benchmark.smaller_is_better)
    try:
        config = load_config(data)
    except ConfigError as error:
        raise ConfigError(error.problems, source) from None
    problems = _space_problems(benchmark, config) + _metric_problems(benchmark, config)
    problems += _length_problems(benchmark, config)
    if problems:
        raise ConfigError(problems, source)
    return config


def _space_problems(benchmark: Benchmark, config: ExperimentConfig) -> list[Problem]:
    leaves = space_from_dict(benchmark.hyperparameters()).leaves()
    benchmark_space = {PATH_SEPARATOR.join(path): hp for path, hp in leaves}
    wanted = set(benchmark_space)
    given = set(config.space.names)
    problems = [Problem(f"hyperparameters.{name}", f"the {benchmark.name} benchmark has no such hyperparameter; "
                        f"its hyperparameters: {', '.join(sorted(wanted))}") for name in sorted(given - wanted)]
    for path, hp in config.space.leaves():
        name = PATH_SEPARATOR.join(path)
        outside = [value for value in _extremes(hp) if name in wanted and not benchmark_space[name].contains(value)]
        if outside:
            problems.append(Problem(f"hyperparameters.{name}", f"the {benchmark.name} benchmark has results only for "
                                    f"{_describe(benchmark_space[name])}", outside[0]))
    if wanted - given:
        problems.append(Problem("hyperparameters", f"the {benchmark.name} benchmark needs every one of its "
                                "hyperparameters (give a constant to fix one); missing: "
                                + ", ".join(sorted(wanted - given))))
    return problems


def _extremes(hp: Hyperparameter) -> list[Any]:
    """The values of a hyperparameter that must lie in the benchmark's range for all of it to lie there."""
    if isinstance(hp, Const):
        return [hp.val]
    if isinstance(hp, Categorical):
        return list(hp.vals)
    if isinstance(hp, Log):
        return [hp.low, hp.high]
    return [hp.minval, hp.maxval]


def _describe(hp: Hyperparameter) -> str:
    if isinstance(hp, Categorical):
        return "the values " + ", ".join(map(repr, hp.vals))
    if isinstance(hp, Const):
        return f"the value {hp.val!r}"
    low, high = (hp.low, hp.high) if isinstance(hp, Log) else (hp.minval, hp.maxval)
    return f"values from {low:g} to {high:g}"


def _metric_problems(benchmark: Benchmark, config: ExperimentConfig) -> list[Problem]:
    searcher = config.searcher
    if searcher.metric != benchmark.metric or searcher.smaller_is_better == benchmark.smaller_is_better:
        return []
    direction = "smaller" if benchmark.smaller_is_better else "larger"
    return [Problem("searcher.smaller_is_better", f"{benchmark.metric} of the {benchmark.name} benchmark is better "
                    f"when {direction}; set smaller_is_better: {str(benchmark.smaller_is_better).lower()}",
                    searcher.smaller_is_better)]


def _length_problems(benchmark: Benchmark, config: ExperimentConfig) -> list[Problem]:
    problems = []
    available = benchmark.lengths()
    for name in type(config.searcher).model_fields:
        length = getattr(config.searcher, name)
        if not isinstance(length, Length):
            continue
        if length.unit != benchmark.unit:
            problems.append(Problem(f"searcher.{name}", f"the {benchmark.name} benchmark measures lengths in "
                                    f"{benchmark.unit}; write {{{benchmark.unit}: N}}", str(length)))
        elif length.value not in available:
            problems.append(Problem(f"searcher.{name}", f"the {benchmark.name} benchmark has results only at "
                                    f"{describe_lengths(available)} {benchmark.unit}", str(length)))
    return problems

