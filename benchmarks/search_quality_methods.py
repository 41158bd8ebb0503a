"""The search methods that `search_quality.py` compares, each built as an hpt search method for the simulator.

hpt's own methods come from experiment configs. Optuna (a sampler with a pruner, through its
ask-and-tell interface) and Ray Tune's ASHAScheduler (over random configurations, as Tune's
default search draws them) are driven by the same simulated reports through small adapters:
each keeps one trial per worker, reports every length the benchmark has results for, and
starts a new trial when one is pruned, stopped or done. The adapters never shut down; the
budget ends their searches. They are benchmark tools, not hpt search methods (their state is
an Optuna study or a Ray scheduler, not plain JSON).

Every method shares the benchmark's settings: the full length, the reduction factor η and the
first rung (hpt's own first rung for that η; Optuna's and Ray's `min_resource` / `grace_period`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from hpt_core import create_searcher
from hpt_core.config import SearcherConfig
from hpt_core.hyperparameters import space_from_dict
from hpt_core.operations import Close, Create, Operation, ValidateAfter
from hpt_core.searchers.adaptive_asha import AdaptiveASHAConfig, rung_count, rung_lengths
from hpt_core.searchers.base import SearchMethod, searcher_metric_value
from hpt_core.simulator import Benchmark
from hpt_core.space import PATH_SEPARATOR, Categorical, Const, Double, Int, Log, nest

LARGE_TRIAL_BUDGET = 1_000_000
DEFAULT_MAX_RUNGS: int = AdaptiveASHAConfig.model_fields["max_rungs"].default


@dataclass(frozen=True)
class Setting:
    """How every method is set up on one benchmark: reduction factor η and, for hpt's grid, a grid."""

    reduction_factor: int
    max_rungs: int = DEFAULT_MAX_RUNGS
    """hpt's `max_rungs` (and so every method's first rung), where the benchmark's lengths need fewer than the default."""
    grid: dict[str, Any] | None = None
    """hpt's grid search space (`count` on every numeric hyperparameter), or None where no grid fits."""


SETTINGS: dict[str, Setting] = {
    # A grid a user might write: the four hyperparameters that matter most, the others at the middle of
    # their ranges (as hpt's defaults put them); 3 x 3 x 3 x 2 = 54 points.
    "lcbench": Setting(reduction_factor=4, grid={
        "batch_size": {"type": "log", "base": 2.0, "minval": 4.0, "maxval": 9.0, "count": 3},
        "learning_rate": {"type": "log", "minval": -4.0, "maxval": -1.0, "count": 3},
        "momentum": 0.545,
        "weight_decay": {"type": "double", "minval": 1e-5, "maxval": 0.1, "count": 2},
        "num_layers": {"type": "int", "minval": 1, "maxval": 5, "count": 3},
        "max_units": 256,
        "max_dropout": 0.5,
    }),
    # Rungs of 12 and 200 epochs, the two lengths NAS-Bench-201 has: 200 / 16 = 12.5.
    "nasbench201": Setting(reduction_factor=16),
    # Rungs of 3, 9, 27 and 81 (the four lengths it has).
    "hartmann": Setting(reduction_factor=3, max_rungs=4),
}


@dataclass(frozen=True)
class Run:
    """What one simulated run needs: the benchmark, a seed, the workers, the budget in simulated seconds."""

    benchmark: Benchmark
    median_full_time: float
    seed: int
    workers: int
    budget: float

    @property
    def setting(self) -> Setting:
        return SETTINGS[self.benchmark.name]

    @property
    def min_length(self) -> int:
        """The first rung of hpt's adaptive ASHA, which the peers' first rung matches."""
        eta = self.setting.reduction_factor
        rungs = rung_count(self.setting.max_rungs, self.benchmark.max_length, LARGE_TRIAL_BUDGET, eta)
        return rung_lengths(self.benchmark.max_length, eta, rungs)[0]


MethodBuilder = Callable[[Run], SearchMethod]


def hpt_method(searcher: dict[str, Any], hyperparameters: Callable[[Run], dict[str, Any] | None] | None = None
               ) -> MethodBuilder:
    """An hpt search method from a `searcher` section; max_length, metric and concurrency come from the run."""
    def build(run: Run) -> SearchMethod:
        space = hyperparameters(run) if hyperparameters else run.benchmark.hyperparameters()
        fields = {"max_length": {"epochs": run.benchmark.max_length}, "metric": run.benchmark.metric,
                  "smaller_is_better": run.benchmark.smaller_is_better, "max_concurrent_trials": run.workers}
        for name, value in searcher.items():
            fields[name] = value(run) if callable(value) else value
        return create_searcher({"searcher": fields, "hyperparameters": space}, seed=run.seed)
    return build


def grid_space(run: Run) -> dict[str, Any] | None:
    return run.setting.grid


def grid_fits(run: Run) -> bool:
    """Whether the grid's points, trained in full at the median time, fit in the run's budget."""
    if run.setting.grid is None:
        return False
    size = space_from_dict(run.setting.grid).grid_size()
    return size * run.median_full_time <= run.budget * run.workers


def trial_cap(run: Run) -> int:
    """More trials than the budget can start: the budget ends hpt's random and ASHA searches, not max_trials."""
    shortest = run.median_full_time * run.min_length / run.benchmark.max_length
    return max(int(10 * run.budget * run.workers / shortest), 16)


# --- the peers, as search methods --------------------------------------------------------------


class PeerSearch(SearchMethod, abc.ABC):
    """One trial per worker, reporting at every length the benchmark has; a new trial whenever one ends."""

    name: ClassVar[str] = "peer"

    def __init__(self, run: Run) -> None:
        config = SearcherConfig(name=self.name, metric=run.benchmark.metric,
                                smaller_is_better=run.benchmark.smaller_is_better)
        super().__init__(config, space_from_dict(run.benchmark.hyperparameters()), run.seed)
        self.workers = run.workers
        self.report_lengths = run.benchmark.lengths()
        self.full_length = run.benchmark.max_length

    def initial_operations(self) -> list[Operation]:
        return [operation for _ in range(self.workers) for operation in self._start_trial()]

    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        value = searcher_metric_value(metric, self.config.metric)
        if self._continues(request_id, value, length) and length < self.full_length:
            return [ValidateAfter(request_id, self.report_lengths[self.report_lengths.index(length) + 1])]
        return [Close(request_id)]

    def on_trial_closed(self, request_id: int) -> list[Operation]:
        return self._start_trial()

    def progress(self) -> float:
        return 0.0

    def _start_trial(self) -> list[Operation]:
        request_id = self.new_request_id()
        return [Create(request_id, self._new_configuration(request_id)),
                ValidateAfter(request_id, self._first_length(request_id))]

    def _first_length(self, request_id: int) -> int:
        """The length a new trial first reports at (the shortest the benchmark has, unless a peer chooses)."""
        return self.report_lengths[0]

    def _length_for(self, budget: float) -> int:
        """The longest length the benchmark has at or below a peer's `budget` (its first length if none is)."""
        at_or_below = [length for length in self.report_lengths if length <= budget + 1e-9]
        return at_or_below[-1] if at_or_below else self.report_lengths[0]

    @abc.abstractmethod
    def _new_configuration(self, request_id: int) -> dict[str, Any]:
        """The hyperparameters of a new trial."""

    @abc.abstractmethod
    def _continues(self, request_id: int, value: float, length: int) -> bool:
        """Whether the trial goes on after reporting `value` at `length` (it is told the end if not)."""


class OptunaSearch(PeerSearch):
    """An Optuna sampler and pruner through ask-and-tell: report every length, ask `should_prune()`."""

    name: ClassVar[str] = "optuna"

    def __init__(self, run: Run, sampler: str, pruner: str) -> None:
        import optuna

        super().__init__(run)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
        eta = run.setting.reduction_factor
        pruners = {
            "none": optuna.pruners.NopPruner,
            "sh": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=run.min_length, reduction_factor=eta),
            "hb": lambda: optuna.pruners.HyperbandPruner(min_resource=run.min_length, max_resource=self.full_length,
                                                         reduction_factor=eta),
        }
        self.study = optuna.create_study(
            study_name=f"simulated-{run.seed}",  # the Hyperband pruner picks brackets by a hash of the name
            direction="minimize" if run.benchmark.smaller_is_better else "maximize",
            sampler=samplers[sampler](seed=run.seed), pruner=pruners[pruner]())
        self.trials: dict[int, Any] = {}
        self.pruned_state = optuna.trial.TrialState.PRUNED

    def _new_configuration(self, request_id: int) -> dict[str, Any]:
        trial = self.study.ask()
        self.trials[request_id] = trial
        return nest({PATH_SEPARATOR.join(path): _suggest(trial, PATH_SEPARATOR.join(path), hp)
                     for path, hp in self.space.leaves()})

    def _continues(self, request_id: int, value: float, length: int) -> bool:
        trial = self.trials[request_id]
        trial.report(value, length)
        if length >= self.full_length:
            self.study.tell(trial, value)
            return False
        if trial.should_prune():
            self.study.tell(trial, state=self.pruned_state)
            return False
        return True


def _suggest(trial: Any, name: str, hp: Any) -> Any:
    if isinstance(hp, Const):
        return hp.val
    if isinstance(hp, Categorical):
        return trial.suggest_categorical(name, list(hp.vals))
    if isinstance(hp, Int):
        return trial.suggest_int(name, hp.minval, hp.maxval)
    if isinstance(hp, Log):
        low, high = sorted((hp.low, hp.high))
        return trial.suggest_float(name, low, high, log=True)
    if isinstance(hp, Double):
        return trial.suggest_float(name, hp.minval, hp.maxval)
    raise TypeError(f"no Optuna distribution for the {hp.type} hyperparameter {name}")


# --- Ray Tune ----------------------------------------------------------------------------------


class RayASHASearch(PeerSearch):
    """Ray Tune's ASHAScheduler (one bracket, its default) over random configurations, fed every report."""

    name: ClassVar[str] = "ray_asha"

    def __init__(self, run: Run) -> None:
        from ray.tune.experiment import Trial
        from ray.tune.schedulers import ASHAScheduler, TrialScheduler

        super().__init__(run)
        np.random.seed(run.seed)  # Ray draws a trial's bracket from numpy's global generator
        self.scheduler = ASHAScheduler(
            time_attr="epoch", metric=run.benchmark.metric, mode="min" if run.benchmark.smaller_is_better else "max",
            max_t=self.full_length, grace_period=run.min_length, reduction_factor=run.setting.reduction_factor)
        self.trial_class = Trial
        self.stop = TrialScheduler.STOP
        self.trials: dict[int, Any] = {}

    def _new_configuration(self, request_id: int) -> dict[str, Any]:
        hparams = self.space.sample(self.rng)
        trial = self.trial_class("simulated", config=hparams, trial_id=str(request_id), stub=True)
        self.scheduler.on_trial_add(None, trial)
        self.trials[request_id] = trial
        return hparams

    def _continues(self, request_id: int, value: float, length: int) -> bool:
        trial = self.trials[request_id]
        result = {"epoch": length, self.config.metric: value}
        if self.scheduler.on_trial_result(None, trial, result) == self.stop or length >= self.full_length:
            self.scheduler.on_trial_complete(None, trial, result)
            return False
        return True


# --- the line-up -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """A method of the comparison: its name in tables, who made it, how to build it, and where it applies."""

    name: str
    library: str
    build: MethodBuilder
    applies: Callable[[Run], bool] = lambda run: True


def hpt_asha(**fields: Any) -> MethodBuilder:
    """hpt's adaptive ASHA with the benchmark's reduction factor as its divisor; the budget ends it."""
    divisor: Callable[[Run], float] = lambda run: float(run.setting.reduction_factor)
    max_rungs: Callable[[Run], int] = lambda run: run.setting.max_rungs
    return hpt_method({"name": "adaptive_asha", "max_trials": trial_cap, "divisor": divisor, "max_rungs": max_rungs,
                       **fields})


METHODS: tuple[Method, ...] = (
    Method("hpt random", "hpt", hpt_method({"name": "random", "max_trials": trial_cap})),
    Method("hpt random + tpe", "hpt", hpt_method({"name": "random", "max_trials": trial_cap, "sampler": "tpe"})),
    Method("hpt random + gp", "hpt", hpt_method({"name": "random", "max_trials": trial_cap, "sampler": "gp"})),
    Method("hpt adaptive_asha", "hpt", hpt_asha()),
    Method("hpt adaptive_asha + tpe", "hpt", hpt_asha(sampler="tpe")),
    Method("hpt adaptive_asha + adaptive fidelity", "hpt", hpt_asha(fidelity="adaptive")),
    Method("hpt adaptive_asha + tpe + adaptive fidelity", "hpt", hpt_asha(sampler="tpe", fidelity="adaptive")),
    Method("hpt adaptive_asha + gp + adaptive fidelity", "hpt", hpt_asha(sampler="gp", fidelity="adaptive")),
    Method("hpt aggressive + tpe + adaptive fidelity", "hpt",
           hpt_asha(mode="aggressive", sampler="tpe", fidelity="adaptive")),
    Method("hpt adaptive_asha aggressive", "hpt", hpt_asha(mode="aggressive")),
    Method("hpt adaptive_asha stop_once", "hpt", hpt_asha(stop_once=True)),
    Method("hpt grid", "hpt", hpt_method({"name": "grid"}, grid_space), grid_fits),
    Method("optuna tpe", "optuna", lambda run: OptunaSearch(run, "tpe", "none")),
    Method("optuna tpe + sh", "optuna", lambda run: OptunaSearch(run, "tpe", "sh")),
    Method("optuna tpe + hyperband", "optuna", lambda run: OptunaSearch(run, "tpe", "hb")),
    Method("optuna random + sh", "optuna", lambda run: OptunaSearch(run, "random", "sh")),
    Method("optuna random + hyperband", "optuna", lambda run: OptunaSearch(run, "random", "hb")),
    Method("ray asha", "ray", RayASHASearch),
    Method("smac multi-fidelity", "smac", lambda run: _peer("SMACSearch")(run)),
    Method("dehb", "dehb", lambda run: _peer("DEHBSearch")(run)),
    Method("syne tune bohb", "syne_tune", lambda run: _peer("SyneTuneSearch")(run, "BOHB")),
)


def _peer(class_name: str) -> Any:
    """A peer adapter of `search_quality_peers.py` (imported when first used: it imports this module)."""
    import search_quality_peers

    return getattr(search_quality_peers, class_name)

BASELINE = "hpt random"
ASHA = "hpt adaptive_asha"
"""The reference for the goal "never worse than adaptive_asha with random sampling by more than the spread"."""
