"""The simulation engine on a small benchmark made here: known curves, known times.

`Ramp`: one hyperparameter `speed` (seconds per epoch) and `quality`; after `length` epochs the
loss is quality / length and the training took speed * length seconds. Configurations are chosen
through `points_to_evaluate`, so every time below can be worked out by hand.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import pytest

from hpt_core import InvalidHP, create_searcher
from hpt_core.config import SearcherConfig
from hpt_core.errors import SearcherError
from hpt_core.searchers import Close, Create, Operation, SearchMethod, ValidateAfter
from hpt_core.simulator import Benchmark, Evaluation, Report, SimulationError, SimulationResult, experiment_for, simulate
from hpt_core.testing.scripted import ScriptedSearch


class Ramp(Benchmark):
    name = "ramp"
    metric = "loss"

    def hyperparameters(self) -> dict[str, Any]:
        return {"speed": {"type": "double", "minval": 1.0, "maxval": 10.0},
                "quality": {"type": "double", "minval": 0.0, "maxval": 100.0}}

    def lengths(self) -> tuple[int, ...]:
        return tuple(range(1, 17))

    def evaluate(self, hparams: Mapping[str, Any], length: int) -> Evaluation:
        if hparams["quality"] < 0.5:
            raise InvalidHP("quality below 0.5 cannot be trained")
        return Evaluation({"loss": hparams["quality"] / length, "epoch": float(length)},
                          elapsed=hparams["speed"] * length)

    def best_value(self) -> float:
        return 0.0


def points(*pairs: tuple[float, float]) -> list[dict[str, float]]:
    return [{"speed": speed, "quality": quality} for speed, quality in pairs]


def searcher_for(searcher: dict[str, Any], seed: int = 0) -> SearchMethod:
    return create_searcher(experiment_for(Ramp(), {"searcher": searcher}), seed=seed)


def random_search(trials: list[dict[str, float]], max_length: int = 10, concurrent: int = 16) -> SearchMethod:
    return searcher_for({"name": "random", "max_length": {"epochs": max_length}, "max_trials": len(trials),
                         "max_concurrent_trials": concurrent, "points_to_evaluate": trials})


def test_trials_wait_for_a_free_worker_and_take_the_benchmarks_time() -> None:
    # 2 workers, 4 trials of 10 epochs at 1, 2, 3 and 1 s per epoch, all created at once:
    # trials 1 and 2 start at 0 and end at 10 and 20; trial 3 takes the worker freed at 10 and ends at 40;
    # trial 4 takes the one freed at 20 and ends at 30.
    result = simulate(random_search(points((1, 5), (2, 5), (3, 5), (1, 5))), Ramp(), workers=2)
    assert [(report.request_id, report.time) for report in result.reports] == [(1, 10.0), (2, 20.0), (4, 30.0),
                                                                               (3, 40.0)]
    assert (result.elapsed, result.shut_down) == (40.0, True)
    assert result.busy == 10 + 20 + 30 + 10
    assert result.utilisation() == pytest.approx(70 / 80)


def test_the_search_methods_concurrency_limits_the_busy_workers() -> None:
    result = simulate(random_search(points((1, 5), (1, 5), (1, 5)), concurrent=1), Ramp(), workers=3)
    assert [report.time for report in result.reports] == [10.0, 20.0, 30.0]


def test_reports_carry_the_benchmarks_metrics_and_the_best_is_found() -> None:
    result = simulate(random_search(points((1, 8), (1, 2), (1, 4))), Ramp(), workers=3)
    assert [dict(report.metrics) for report in result.reports] == [
        {"loss": 0.8, "epoch": 10.0}, {"loss": 0.2, "epoch": 10.0}, {"loss": 0.4, "epoch": 10.0}]
    assert result.best().request_id == 2
    assert result.incumbent() == [(10.0, 0.8), (10.0, 0.2)]
    assert result.lengths() == {1: 10, 2: 10, 3: 10}


def test_the_budget_stops_the_search_and_cuts_off_running_work() -> None:
    # One worker, trials of 10 s each: reports at 10 and 20; the third trial is cut off at 25.
    result = simulate(random_search(points((1, 5), (1, 5), (1, 5), (1, 5))), Ramp(), workers=1, budget=25.0)
    assert [report.time for report in result.reports] == [10.0, 20.0]
    assert (result.elapsed, result.shut_down, result.busy) == (25.0, False, 25.0)
    assert result.lengths() == {1: 10, 2: 10, 3: 0, 4: 0}


def test_a_report_exactly_at_the_budget_counts() -> None:
    result = simulate(random_search(points((1, 5), (1, 5))), Ramp(), workers=1, budget=10.0)
    assert [report.time for report in result.reports] == [10.0]


def test_promotion_based_asha_pauses_trials_and_resumes_them_without_lost_work() -> None:
    # Aggressive ASHA: rungs 1, 4 and 16 epochs, divisor 4, 16 trials created at once; one worker, 1 s per
    # epoch; trial 1 is the best (quality 1), then trials 2, 3, ... ever worse. Every trial waits its turn
    # for the worker, first come, first served:
    #   0-16 s: trials 1..16 train 1 epoch each. Trial 1 pauses after its report at 1 s (nothing promoted
    #           yet) and frees the worker; the 4th, 8th, 12th and 16th reports promote trials 1, 2, 3, 4.
    #   16-28 s: trials 1, 2, 3, 4 resume from 1 epoch and train 3 more each (1 -> 4); the 4th report at
    #           this rung promotes trial 1, which goes on at once: 12 more epochs, 28-40 s.
    trials = points((1, 1), *((1, quality) for quality in range(2, 17)))
    searcher = searcher_for({"name": "adaptive_asha", "mode": "aggressive", "max_length": {"epochs": 16},
                             "max_trials": 16, "divisor": 4, "max_concurrent_trials": 16,
                             "points_to_evaluate": trials})
    result = simulate(searcher, Ramp(), workers=1)
    assert [(report.time, report.length) for report in result.reports if report.request_id == 1] == [
        (1.0, 1), (19.0, 4), (40.0, 16)]
    assert [(report.time, report.length) for report in result.reports if report.request_id == 4] == [
        (4.0, 1), (28.0, 4)]
    assert sorted(result.lengths().values()) == [1] * 12 + [4] * 3 + [16]
    assert result.busy == result.elapsed == sum(result.lengths().values()) == 40.0
    assert result.shut_down


def test_stopping_based_asha_trains_nothing_twice() -> None:
    searcher = searcher_for({"name": "adaptive_asha", "mode": "aggressive", "max_length": {"epochs": 16},
                             "max_trials": 16, "stop_once": True,
                             "points_to_evaluate": points(*((1, 17 - quality) for quality in range(16)))})
    result = simulate(searcher, Ramp(), workers=3)
    assert result.busy == sum(result.lengths().values())
    assert max(result.lengths().values()) == 16


def test_a_pbt_child_continues_its_parents_curve_and_pays_only_for_its_own_epochs() -> None:
    # Population 2, 2 rounds of 4 epochs, truncate 0.5: after round 1 (both members at 4 epochs) the worse is
    # closed and the better gets a child that starts from the parent's 4 epochs and trains 4 of its own:
    # its report at its own length 4 is the curve at position 8, and it took 4 epochs of its own speed.
    searcher = searcher_for({"name": "pbt", "population_size": 2, "num_rounds": 2,
                             "length_per_round": {"epochs": 4}, "points_to_evaluate": points((1, 8), (2, 16)),
                             "replace_function": {"truncate_fraction": 0.5},
                             "explore_function": {"resample_probability": 0.0, "perturb_factor": 0.5}})
    result = simulate(searcher, Ramp(), workers=2)
    child = result.trials[3]
    assert (child.start, child.length, child.position) == (4, 4, 8)
    child_report = next(report for report in result.reports if report.request_id == 3)
    assert child_report.metrics["epoch"] == 8.0
    assert child_report.metrics["loss"] == pytest.approx(child.hparams["quality"] / 8)
    # Round 1 ends when trial 2 reports at 8 s (4 epochs at 2 s); the child starts then.
    assert child_report.time == pytest.approx(8.0 + 4 * child.hparams["speed"])


def test_a_trial_the_benchmark_cannot_train_exits_as_invalid_and_is_replaced() -> None:
    searcher = random_search(points((1, 0.1), (1, 5)))
    result = simulate(searcher, Ramp(), workers=2)
    assert result.trials[1].exited is not None and result.trials[1].exited.value == "INVALID_HP"
    assert sorted(report.request_id for report in result.reports) == [2, 3]


class ClosesTheSlowOne(SearchMethod):
    """Starts a slow and a fast trial; when the fast one reports, closes both."""

    name: ClassVar[str] = "closes_the_slow_one"
    config_model: ClassVar[type[SearcherConfig]] = SearcherConfig

    def initial_operations(self) -> list[Operation]:
        slow, fast = self.new_request_id(), self.new_request_id()
        return [Create(slow, {"speed": 10.0, "quality": 1.0}), ValidateAfter(slow, 10),
                Create(fast, {"speed": 1.0, "quality": 1.0}), ValidateAfter(fast, 10)]

    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        return [Close(1), Close(2)]

    def on_trial_closed(self, request_id: int) -> list[Operation]:
        return [self.shutdown()] if request_id == 2 else []

    def progress(self) -> float:
        return 0.0


def test_a_trial_closed_while_training_stops_at_once() -> None:
    searcher = ClosesTheSlowOne(SearcherConfig(name="closes_the_slow_one", metric="loss"),
                                searcher_for({"name": "single", "max_length": {"epochs": 1}}).space)
    result = simulate(searcher, Ramp(), workers=2)
    assert (result.elapsed, result.busy, result.shut_down) == (10.0, 20.0, True)
    assert [report.request_id for report in result.reports] == [2]
    assert result.lengths() == {1: 0, 2: 10}


def stalls(space: Any, length: int = 2) -> ScriptedSearch:
    """Trains one trial to `length`, then asks for nothing more and never shuts down."""
    return ScriptedSearch(SearcherConfig(name="stalls", metric="loss"), space,
                          [Create(1, {"speed": 1.0, "quality": 1.0}), ValidateAfter(1, length)])


def test_a_search_that_stops_before_its_shutdown_is_an_error() -> None:
    space = searcher_for({"name": "single", "max_length": {"epochs": 1}}).space
    with pytest.raises(SearcherError, match="stopped before its Shutdown"):
        simulate(stalls(space), Ramp())


def test_a_length_the_benchmark_has_no_results_for_is_an_error() -> None:
    searcher = stalls(searcher_for({"name": "single", "max_length": {"epochs": 1}}).space, length=20)
    with pytest.raises(SimulationError, match=r"results only at 1\.\.16 epochs; a search asked for 20"):
        simulate(searcher, Ramp())


@pytest.mark.parametrize("workers, budget, message", [(0, None, "workers must be an integer ≥ 1, got 0"),
                                                       (2, 0.0, "budget must be .* > 0, got 0.0")])
def test_bad_settings_are_errors(workers: int, budget: float | None, message: str) -> None:
    with pytest.raises(SimulationError, match=message):
        simulate(random_search(points((1, 5))), Ramp(), workers=workers, budget=budget)


def test_one_seed_one_simulation() -> None:
    def run() -> list[tuple[float, int, int]]:
        searcher = searcher_for({"name": "adaptive_asha", "max_length": {"epochs": 16}, "max_trials": 30,
                                 "max_concurrent_trials": 4}, seed=7)
        return [(report.time, report.request_id, report.length) for report in simulate(searcher, Ramp(), 3).reports]

    assert run() == run()


def test_the_incumbent_may_count_only_reports_at_one_length() -> None:
    reports = (Report(1.0, 1, 3, {"loss": 0.1}), Report(2.0, 2, 81, {"loss": 0.5}), Report(3.0, 3, 81, {"loss": 0.3}),
               Report(4.0, 4, 81, {"loss": 0.4}))
    result = SimulationResult("loss", True, 1, {}, reports, elapsed=4.0, shut_down=True)
    assert result.incumbent() == [(1.0, 0.1)]
    assert result.incumbent(81) == [(2.0, 0.5), (3.0, 0.3)]
