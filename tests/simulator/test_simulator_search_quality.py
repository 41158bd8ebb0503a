"""A smoke test of benchmarks/search_quality.py: every method on two tasks, a tiny budget, one seed."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from hpt_core.simulator import default_data_dir

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_quality.py"
MISSING = [name for name in ("onnxruntime", "optuna", "matplotlib") if importlib.util.find_spec(name) is None]
HAS_RAY = importlib.util.find_spec("ray") is not None

pytestmark = pytest.mark.skipif(bool(MISSING),
                                reason=f"the benchmarks extra is not installed (missing: {', '.join(MISSING)})")
NEEDS_DATA = pytest.mark.skipif(not (default_data_dir() / "nasbench201").is_dir() or
                                not (default_data_dir() / "yahpo" / "lcbench").is_dir(),
                                reason=f"no benchmark data at {default_data_dir()}")
"""LCBench and NAS-Bench-201 are tables beside the project (../shared); the Hartmann functions are computed."""


@NEEDS_DATA
def test_the_search_quality_benchmark_writes_its_tables_and_plots(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- search-quality:begin -->\nold\n<!-- search-quality:end -->\n\n## Overhead\n")
    argv = [sys.executable, str(SCRIPT), "--seeds", "1", "--budget", "3", "--processes", "2",
            "--tasks", "lcbench:167168", "nasbench201:cifar10", "--out", str(tmp_path / "results"), "--docs", str(docs)]
    if not HAS_RAY:
        argv.append("--no-ray")
    finished = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert finished.returncode == 0, finished.stderr

    results = tmp_path / "results"
    assert sorted(path.name for path in results.iterdir()) == [
        "final_regret.png", "regret_over_time.png", "search_quality.csv", "search_quality.md",
        "search_quality_runs.jsonl"]
    with (results / "search_quality.csv").open() as handle:
        runs = list(csv.DictReader(handle))
    methods = {row["method"] for row in runs}
    assert {"hpt random", "hpt adaptive_asha", "hpt adaptive_asha stop_once", "optuna tpe + sh",
            "optuna tpe + hyperband", "optuna random + sh", "optuna random + hyperband"} <= methods
    assert ("ray asha" in methods) == HAS_RAY
    assert {row["task"] for row in runs} == {"lcbench:167168", "nasbench201:cifar10"}
    assert all(float(row["final_regret"]) >= 0 for row in runs)

    tables = (results / "search_quality.md").read_text()
    assert ("| method | lcbench:167168 | nasbench201:cifar10 | lowest on | speed-up (geo. mean) "
            "| vs fastest peer (geo. mean) |") in tables
    assert "Not run on this task: hpt grid (the grid does not fit the budget)." in tables
    written = docs.read_text()
    assert written.startswith("# Benchmarks\n\n<!-- search-quality:begin -->\nMedian final regret per task")
    assert written.endswith("<!-- search-quality:end -->\n\n## Overhead\n") and "\nold\n" not in written


def test_methods_asked_for_without_hpt_random_are_measured_against_it_too(tmp_path: Path) -> None:
    argv = [sys.executable, str(SCRIPT), "--seeds", "1", "--budget", "2", "--methods", "optuna tpe",
            "--tasks", "hartmann:h3-good", "--out", str(tmp_path), "--no-ray"]
    finished = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert finished.returncode == 0, finished.stderr
    assert "also running 'hpt random': the time to target is measured against it" in finished.stdout
    with (tmp_path / "search_quality.csv").open() as handle:
        assert sorted(row["method"] for row in csv.DictReader(handle)) == ["hpt random", "optuna tpe"]


@NEEDS_DATA
def test_one_seed_gives_one_result_for_every_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from search_quality_methods import METHODS, Run

    from hpt_core.simulator import load_benchmark, simulate

    benchmark = load_benchmark("nasbench201", "cifar10")
    run = Run(benchmark, median_full_time=200.0, seed=5, workers=4, budget=1000.0)
    for method in METHODS:
        if not method.applies(run) or (method.library != "hpt" and importlib.util.find_spec(method.library) is None):
            continue
        runs = [simulate(method.build(run), benchmark, run.workers, run.budget) for _ in range(2)]
        first, second = ([(report.time, report.request_id, report.length) for report in run.reports] for run in runs)
        assert first == second, method.name


@pytest.mark.parametrize("task, budgets, lengths", [
    pytest.param("nasbench201:cifar10", [12.5, 200.0], [12, 200], marks=NEEDS_DATA),  # 200 / 16: not the full length
    pytest.param("lcbench:167168", [3.25, 13.0, 52.0], [3, 13, 52], marks=NEEDS_DATA),
    ("hartmann:h3-good", [81 / 27, 9.0, 27.0, 81.0], [3, 9, 27, 81]),
    ("hartmann:h3-good", [1.5], [3]),  # below the first length: the first length
])
def test_a_peer_that_asks_for_a_budget_trains_to_the_longest_length_at_or_below_it(monkeypatch, task, budgets,
                                                                                 lengths) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from search_quality_methods import OptunaSearch, Run

    from hpt_core.simulator import load_benchmark

    benchmark = load_benchmark(*task.split(":"))
    peer = OptunaSearch(Run(benchmark, median_full_time=100.0, seed=0, workers=4, budget=1000.0), "tpe", "none")
    assert [peer._length_for(budget) for budget in budgets] == lengths
