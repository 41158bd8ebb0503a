"""The newer multi-fidelity peers of `search_quality.py`: SMAC3's multi-fidelity facade, DEHB and Syne Tune's BOHB.

Each is driven by the simulator through the `PeerSearch` adapter of `search_quality_methods.py`
(one trial per worker, a new trial whenever one ends), with the benchmark's η and first rung:

- SMAC3 (`MultiFidelityFacade`: Hyperband with a random-forest model) through ask-and-tell: it
  asks for a configuration and a budget; the trial trains from scratch to the longest length the
  benchmark has at or below that budget (the first length if the budget is below it), reports
  once and ends (SMAC does not continue trials). Its budgets are the full length over powers of
  η (LCBench's 52, 13 and 3.25 epochs; NAS-Bench-201's 200 and 12.5), which land on the
  benchmark's lengths this way. Its output goes to a temporary folder.
- Syne Tune's `BOHB` (asynchronous successive halving, stopping-based, with a KDE model, the
  multi-fidelity method of its current release that runs here) through its scheduler interface:
  `suggest()` for a new trial, `on_trial_result()` after every length the benchmark has,
  stopped when it says so.

- DEHB (differential evolution + Hyperband) through ask-and-tell, as SMAC: each (configuration,
  fidelity) it asks for trains from scratch to that length and reports once. Its only release on
  the registry (0.1.2) pins numpy < 2 while hpt requires numpy ≥ 2, so it is not in the
  `benchmarks` extra: `pip install loguru dask distributed ConfigSpace pandas pyarrow` (its other
  requirements), then `pip install --no-deps dehb==0.1.2`, installs it beside hpt, and it runs on
  numpy 2 (the pin is older than numpy 2, not a known break).

Left out: Syne Tune's `ASHACQR`, which imports
`huggingface_hub` (for its blackbox repository) and fails without it; Syne Tune's `ASHABORE`,
which took about a minute per simulated run of 3 full trainings' budget, too slow for the suite
on this machine.
"""

from __future__ import annotations

import abc
import logging
import tempfile
from datetime import datetime
from typing import Any, ClassVar

import numpy as np

from search_quality_methods import LARGE_TRIAL_BUDGET, PeerSearch, Run

from hpt_core.space import PATH_SEPARATOR, Categorical, Double, Int, Log, nest


def _flat_name(path: tuple[str, ...]) -> str:
    return PATH_SEPARATOR.join(path)


def _translate(space: Any, categorical: Any, integer: Any, log: Any, uniform: Any) -> dict[str, Any]:
    """Per flat name, a peer's own domain for each hyperparameter (the benchmarks here have no constants)."""
    domains = {}
    for path, hp in space.leaves():
        if isinstance(hp, Categorical):
            domains[_flat_name(path)] = categorical(_flat_name(path), list(hp.vals))
        elif isinstance(hp, Int):
            domains[_flat_name(path)] = integer(_flat_name(path), hp.minval, hp.maxval)
        elif isinstance(hp, Log):
            domains[_flat_name(path)] = log(_flat_name(path), *sorted((hp.low, hp.high)))
        elif isinstance(hp, Double):
            domains[_flat_name(path)] = uniform(_flat_name(path), hp.minval, hp.maxval)
        else:
            raise TypeError(f"no peer domain for the {hp.type} hyperparameter {_flat_name(path)}")
    return domains


class AskAndTellSearch(PeerSearch):
    """A peer that asks for a configuration and a budget: the trial trains from scratch to the longest length at or
    below the budget, reports once, and the peer is told its value (minimised: negated where larger is better)."""

    def __init__(self, run: Run, output_prefix: str) -> None:
        super().__init__(run)
        self.configuration_space = _configuration_space(self.space, run.seed)
        self.output = tempfile.TemporaryDirectory(prefix=output_prefix)
        self.asked: dict[int, tuple[Any, float]] = {}
        self.sign = 1.0 if run.benchmark.smaller_is_better else -1.0

    def _new_configuration(self, request_id: int) -> dict[str, Any]:
        job, values, budget = self._ask()
        self.asked[request_id] = (job, budget)
        return _from_configuration(self.space, values)

    def _first_length(self, request_id: int) -> int:
        return self._length_for(self.asked[request_id][1])

    def _continues(self, request_id: int, value: float, length: int) -> bool:
        self._tell(self.asked.pop(request_id)[0], self.sign * value, length)
        return False

    @abc.abstractmethod
    def _ask(self) -> tuple[Any, dict[str, Any], float]:
        """The peer's next job, its configuration's values by flat name, and its budget."""

    @abc.abstractmethod
    def _tell(self, job: Any, cost: float, length: int) -> None:
        """Tell the peer the `cost` (to minimise) of `job`, trained to `length`."""


class SMACSearch(AskAndTellSearch):
    """SMAC3's multi-fidelity facade (Hyperband + random forest) through ask-and-tell."""

    name: ClassVar[str] = "smac"

    def __init__(self, run: Run) -> None:
        from smac import MultiFidelityFacade, Scenario
        from smac.runhistory.dataclasses import TrialValue

        super().__init__(run, "hpt-smac-")
        scenario = Scenario(self.configuration_space, deterministic=True, n_trials=LARGE_TRIAL_BUDGET,
                            min_budget=run.min_length, max_budget=self.full_length, seed=run.seed,
                            output_directory=self.output.name)
        intensifier = MultiFidelityFacade.get_intensifier(scenario, eta=run.setting.reduction_factor)
        self.smac = MultiFidelityFacade(scenario, target_function=lambda config, seed, budget: 0.0,
                                        intensifier=intensifier, overwrite=True, logging_level=False)
        logging.getLogger("smac").setLevel(logging.ERROR)  # its own loggers only: the host process's stay as they are
        self.trial_value = TrialValue

    def _ask(self) -> tuple[Any, dict[str, Any], float]:
        info = self.smac.ask()
        return info, dict(info.config), info.budget

    def _tell(self, job: Any, cost: float, length: int) -> None:
        self.smac.tell(job, self.trial_value(cost=cost))


class DEHBSearch(AskAndTellSearch):
    """DEHB (differential evolution + Hyperband) through ask-and-tell."""

    name: ClassVar[str] = "dehb"

    def __init__(self, run: Run) -> None:
        from dehb import DEHB

        super().__init__(run, "hpt-dehb-")
        self.dehb = DEHB(cs=self.configuration_space, dimensions=len(self.configuration_space),
                         min_fidelity=run.min_length, max_fidelity=self.full_length, eta=run.setting.reduction_factor,
                         n_workers=1, seed=run.seed, output_path=self.output.name, save_freq="end", log_level="ERROR")

    def _ask(self) -> tuple[Any, dict[str, Any], float]:
        job = self.dehb.ask()
        return job, dict(job["config"]), float(job["fidelity"])

    def _tell(self, job: Any, cost: float, length: int) -> None:
        self.dehb.tell(job, {"fitness": cost, "cost": float(length)})


def _configuration_space(space: Any, seed: int) -> Any:
    """`space` as a ConfigSpace `ConfigurationSpace` (SMAC's and DEHB's); categorical values as strings."""
    from ConfigSpace import Categorical as CSCategorical
    from ConfigSpace import ConfigurationSpace, Float, Integer

    configuration_space = ConfigurationSpace(seed=seed)
    configuration_space.add(list(_translate(
        space,
        categorical=lambda name, values: CSCategorical(name, [str(value) for value in values]),
        integer=lambda name, low, high: Integer(name, (low, high)),
        log=lambda name, low, high: Float(name, (low, high), log=True),
        uniform=lambda name, low, high: Float(name, (low, high))).values()))
    return configuration_space


def _from_configuration(space: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The nested hyperparameters of a ConfigSpace configuration's `values` (categorical strings mapped back)."""
    flat = {}
    for path, hp in space.leaves():
        value = values[_flat_name(path)]
        flat[_flat_name(path)] = (next(choice for choice in hp.vals if str(choice) == value)
                                  if isinstance(hp, Categorical) else value)
    return nest(flat)


class SyneTuneSearch(PeerSearch):
    """A Syne Tune multi-fidelity scheduler (`BOHB` or `ASHACQR`), stopping-based, fed every report."""

    name: ClassVar[str] = "syne_tune"

    def __init__(self, run: Run, scheduler: str) -> None:
        from syne_tune.backend.trial_status import Trial
        from syne_tune.config_space import choice, loguniform, randint, uniform
        from syne_tune.optimizer import baselines

        super().__init__(run)
        np.random.seed(run.seed)  # Syne Tune draws a trial's bracket from numpy's global generator
        config_space = _translate(self.space, categorical=lambda name, values: choice(values),
                                  integer=lambda name, low, high: randint(low, high),
                                  log=lambda name, low, high: loguniform(low, high),
                                  uniform=lambda name, low, high: uniform(low, high))
        self.metric = run.benchmark.metric
        self.scheduler = getattr(baselines, scheduler)(
            config_space, metric=self.metric, time_attr="epoch", max_t=self.full_length,
            do_minimize=run.benchmark.smaller_is_better, random_seed=run.seed, grace_period=run.min_length,
            reduction_factor=run.setting.reduction_factor)
        self.trial_class = Trial
        self.trials: dict[int, Any] = {}

    def _new_configuration(self, request_id: int) -> dict[str, Any]:
        suggestion = self.scheduler.suggest()
        trial = self.trial_class(trial_id=request_id, config=suggestion.config, creation_time=datetime.now())
        self.scheduler.on_trial_add(trial)
        self.trials[request_id] = trial
        return nest({_flat_name(path): suggestion.config[_flat_name(path)] for path, _ in self.space.leaves()})

    def _continues(self, request_id: int, value: float, length: int) -> bool:
        trial = self.trials[request_id]
        result = {"epoch": length, self.metric: value}
        if length >= self.full_length or self.scheduler.on_trial_result(trial, result) == "STOP":
            self.scheduler.on_trial_complete(trial, result)
            return False
        return True
