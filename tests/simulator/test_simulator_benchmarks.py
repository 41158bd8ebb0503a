"""The built-in benchmarks' lookups on the real shared data (../shared/benchmarks, or $HPT_BENCHMARK_DATA), and
the synthetic Hartmann functions."""

from __future__ import annotations

import numpy as np
import pytest

from hpt_core import ConfigError, create_searcher
from hpt_core.searchers.fidelity import rank_correlation
from hpt_core.simulator import (
    Hartmann,
    LCBench,
    NASBench201,
    SimulationError,
    default_data_dir,
    experiment_for,
    load_benchmark,
    simulate,
)

DATA = default_data_dir()
needs_nasbench201 = pytest.mark.skipif(not (DATA / "nasbench201").is_dir(),
                                       reason=f"no NAS-Bench-201 data at {DATA / 'nasbench201'}")
needs_lcbench = pytest.mark.skipif(not (DATA / "yahpo" / "lcbench").is_dir(),
                                   reason=f"no YAHPO LCBench data at {DATA / 'yahpo' / 'lcbench'}")

ALL_3X3 = {f"edge{index}": "nor_conv_3x3" for index in range(6)}
LCBENCH_POINT = {"batch_size": 64, "learning_rate": 1e-3, "momentum": 0.9, "weight_decay": 1e-4, "num_layers": 3,
                 "max_units": 256, "max_dropout": 0.1}


@pytest.fixture(scope="module")
def lcbench() -> LCBench:
    pytest.importorskip("onnxruntime", reason="the lcbench benchmark needs onnxruntime (the benchmarks extra)")
    return LCBench("167168")


@needs_nasbench201
def test_nasbench201_looks_up_the_tables_at_12_and_200_epochs() -> None:
    benchmark = NASBench201("cifar10")
    at_12 = benchmark.lookup(ALL_3X3, 12)
    at_200 = benchmark.lookup(ALL_3X3, 200)
    assert at_12.metrics == {"test_accuracy": 82.2, "val_accuracy": pytest.approx(69.078, abs=1e-3)}
    assert at_200.metrics == {"test_accuracy": 93.74, "train_accuracy": 99.958}
    assert (at_12.elapsed, at_200.elapsed) == (12.0, 200.0)  # one simulated second per epoch
    assert benchmark.best_value() == 94.47
    assert benchmark.median_full_time() == 200.0


@needs_nasbench201
def test_nasbench201_tasks_and_their_best_values() -> None:
    assert NASBench201.tasks == ("cifar10", "cifar100", "ImageNet16-120")
    assert NASBench201("cifar100").best_value() == pytest.approx(74.28)
    assert NASBench201("ImageNet16-120").best_value() == pytest.approx(47.333, abs=1e-3)


@needs_nasbench201
def test_nasbench201_has_no_results_between_its_two_lengths() -> None:
    with pytest.raises(SimulationError, match="results only at 12, 200 epochs; a search asked for 50"):
        NASBench201().lookup(ALL_3X3, 50)


@needs_nasbench201
def test_nasbench201_names_a_bad_operation() -> None:
    with pytest.raises(SimulationError, match="edge2='conv_7x7'"):
        NASBench201().lookup({**ALL_3X3, "edge2": "conv_7x7"}, 12)


@needs_lcbench
def test_lcbench_predicts_the_surrogates_curve(lcbench: LCBench) -> None:
    # The surrogate predicts 51.78 % after 52 epochs (156 simulated seconds) for this configuration on 167168.
    final = lcbench.lookup(LCBENCH_POINT, 52)
    assert final.metrics["val_accuracy"] == pytest.approx(51.78, abs=0.01)
    assert set(final.metrics) == {"val_accuracy", "val_cross_entropy", "val_balanced_accuracy",
                                  "test_cross_entropy", "test_balanced_accuracy"}
    times = [lcbench.lookup(LCBENCH_POINT, epoch).elapsed for epoch in range(1, 53)]
    assert times == sorted(times) and times[0] > 0
    assert final.elapsed == pytest.approx(156.2, abs=0.1)


@needs_lcbench
def test_lcbench_rounds_its_log_scaled_integers(lcbench: LCBench) -> None:
    assert lcbench.lookup({**LCBENCH_POINT, "batch_size": 64.3, "max_units": 255.8}, 10) == \
        lcbench.lookup(LCBENCH_POINT, 10)


@needs_lcbench
def test_lcbench_best_known_value_and_tasks(lcbench: LCBench) -> None:
    assert lcbench.best_value() == pytest.approx(87.94883)
    assert len(LCBench.tasks) == 34 and LCBench.tasks[0] == "167168"
    with pytest.raises(SimulationError, match="no task '167083'"):
        LCBench("167083")


@needs_lcbench
def test_lcbench_search_fills_in_the_space_and_metric(lcbench: LCBench) -> None:
    config = experiment_for(lcbench, {"searcher": {"name": "adaptive_asha", "max_length": {"epochs": 52},
                                                   "max_trials": 32, "max_concurrent_trials": 4}})
    assert (config.searcher.metric, config.searcher.smaller_is_better) == ("val_accuracy", False)
    assert sorted(config.hyperparameters) == sorted(lcbench.hyperparameters())
    result = simulate(create_searcher(config, seed=1), lcbench, workers=4)
    assert result.shut_down and len(result.trials) == 32
    assert 0 < lcbench.regret(result.value(result.best())) < 50


@needs_nasbench201
def test_an_experiment_file_that_does_not_fit_the_benchmark_names_every_problem() -> None:
    with pytest.raises(ConfigError) as raised:
        experiment_for(NASBench201(), {"searcher": {"name": "random", "metric": "test_accuracy", "max_length": 100,
                                                    "max_trials": 4},
                                       "hyperparameters": {"edge0": "conv_7x7", "width": 3}})
    assert raised.value.paths == ["hyperparameters.width", "hyperparameters.edge0", "hyperparameters",
                                  "searcher.smaller_is_better", "searcher.max_length"]


def test_the_data_folder_can_be_set(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("HPT_BENCHMARK_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    with pytest.raises(SimulationError, match=f"no file {tmp_path}/nasbench201/nb201_hp12_val_test.csv.gz"):
        load_benchmark("nasbench201")


def test_an_unknown_benchmark_names_the_known_ones() -> None:
    with pytest.raises(SimulationError, match="no benchmark 'nb301'; built in: lcbench, nasbench201"):
        load_benchmark("nb301")


# --- hartmann: computed, no data -------------------------------------------------------------------


def test_hartmann_is_the_exact_function_at_the_full_length_with_its_known_minimum() -> None:
    three, six = Hartmann("h3-terrible"), Hartmann("h6-good")
    optimum_3 = {"x0": 0.114614, "x1": 0.555649, "x2": 0.852547}
    optimum_6 = dict(zip((f"x{i}" for i in range(6)), (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)))
    assert three.lookup(optimum_3, 81).metrics["loss"] == pytest.approx(-3.86278, abs=1e-4)
    assert six.lookup(optimum_6, 81).metrics["loss"] == pytest.approx(-3.32237, abs=1e-4)
    assert (three.best_value(), six.best_value()) == (-3.86278, -3.32237)
    assert three.lookup(optimum_3, 27).elapsed == 27.0


def test_hartmann_low_fidelities_rank_as_the_full_length_by_their_quality() -> None:
    """Spearman's rho between lengths 3 and 81 over 200 random points: high when good, low or negative when
    terrible; the same point at the same length always gives the same value."""
    rng = np.random.default_rng(0)
    points = [{f"x{i}": float(value) for i, value in enumerate(rng.random(3))} for _ in range(200)]
    correlations = {}
    for quality in ("good", "bad", "terrible"):
        benchmark = Hartmann(f"h3-{quality}")
        pairs = [(benchmark.lookup(point, 3).metrics["loss"], benchmark.lookup(point, 81).metrics["loss"])
                 for point in points]
        correlations[quality] = rank_correlation(pairs)
        assert benchmark.lookup(points[0], 3) == benchmark.lookup(points[0], 3)
    assert correlations["good"] > 0.8
    assert correlations["terrible"] < 0.3
    assert correlations["good"] > correlations["bad"] > correlations["terrible"]
