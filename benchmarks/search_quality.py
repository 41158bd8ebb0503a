"""Search quality: hpt's search methods against Optuna's and Ray Tune's, in simulated time on tabular benchmarks.

Every method runs on the same tasks with the same simulated workers and the same simulated
wall-clock budget (a multiple of the task's median full-training time), over several seeds
(`hpt_core.simulator` plays each search; see docs/benchmarks.md). Regret is the best value
known for the task minus the best value reported so far. Writes to --out
(default benchmarks/results/): search_quality.csv (one row per run), search_quality.md (the
tables), regret_over_time.png and final_regret.png; with --docs, also the tables into
docs/benchmarks.md between its search-quality markers.

    python benchmarks/search_quality.py                 # the default settings
    python benchmarks/search_quality.py --full --docs docs/benchmarks.md   # the docs' figures

Needs the `benchmarks` extra (onnxruntime, optuna, ray[tune], matplotlib); `--no-ray` leaves
Ray Tune out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_quality_methods import METHODS, Method, Run  # noqa: E402
from search_quality_report import (  # noqa: E402
    RunResult,
    markdown_tables,
    plot_final_regret,
    plot_regret,
    summarise,
    update_docs,
    write_runs_csv,
)

from hpt_core.simulator import Benchmark, SimulationError, load_benchmark, simulate  # noqa: E402

DEFAULT_TASKS = ("lcbench:167168", "lcbench:189873", "lcbench:189906",
                 "nasbench201:cifar10", "nasbench201:cifar100", "nasbench201:ImageNet16-120")
DEFAULTS = {"seeds": 10, "budget": 25.0, "workers": 4}
FULL = {"seeds": 25, "budget": 40.0, "workers": 4}

_benchmarks: dict[tuple[str, str | None], tuple[Benchmark, float]] = {}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = FULL if args.full else DEFAULTS
    seeds = args.seeds or settings["seeds"]
    budget_multiple = args.budget or settings["budget"]
    workers = args.workers or settings["workers"]
    methods = [method for method in METHODS
               if (not args.methods or method.name in args.methods) and not (args.no_ray and method.library == "ray")]
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    jobs = [(task, method.name, seed, workers, budget_multiple, args.data)
            for task in args.tasks for method in methods for seed in range(seeds)]
    print(f"{len(jobs)} runs: {len(args.tasks)} tasks x {len(methods)} methods x {seeds} seeds, {workers} workers, "
          f"budget {budget_multiple:g} x the median full training; {args.processes} processes", flush=True)
    results: list[RunResult] = []
    skipped: dict[str, list[str]] = {}
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        for done, outcome in enumerate(pool.map(run_job, jobs, chunksize=1), start=1):
            if isinstance(outcome, RunResult):
                results.append(outcome)
            else:
                task, method = outcome
                if method not in skipped.setdefault(task, []):
                    skipped[task].append(method)
            if done % max(len(jobs) // 20, 1) == 0:
                print(f"  {done}/{len(jobs)} runs, {time.monotonic() - started:.0f} s", flush=True)
    elapsed = time.monotonic() - started

    summaries = summarise(results, [method.name for method in methods], skipped)
    command = "python benchmarks/search_quality.py" + "".join(f" {arg}" for arg in (argv or sys.argv[1:]))
    tables = markdown_tables(summaries, seeds, workers, budget_multiple)
    footer = (f"Made by `{command}` in {elapsed / 60:.1f} minutes ({args.processes} processes, "
              f"{os.cpu_count()} cores); plots: `{_relative(args.out / 'regret_over_time.png')}`, "
              f"`{_relative(args.out / 'final_regret.png')}`.\n")
    (args.out / "search_quality.md").write_text(tables + "\n" + footer)
    write_runs_csv(summaries, args.out / "search_quality.csv")
    plot_regret(summaries, args.out / "regret_over_time.png")
    plot_final_regret(summaries, args.out / "final_regret.png")
    if args.docs:
        update_docs(args.docs, tables + "\n" + footer)
    print(tables + "\n" + footer)
    return 0


def run_job(job: tuple[str, str, int, int, float, str | None]) -> RunResult | tuple[str, str]:
    """Simulate one method on one task with one seed; (task, method) if the method does not apply there."""
    task, method_name, seed, workers, budget_multiple, data = job
    benchmark, full = _benchmark(task, data)
    run = Run(benchmark, full, seed, workers, budget_multiple * full)
    method: Method = next(method for method in METHODS if method.name == method_name)
    if not method.applies(run):
        return task, method_name
    started = time.monotonic()
    result = simulate(method.build(run), benchmark, workers, run.budget)
    return RunResult(task, method_name, seed, run.budget, full, benchmark.smaller_is_better, benchmark.best_value(),
                     tuple(result.incumbent()), len(result.trials), time.monotonic() - started)


def _benchmark(task: str, data: str | None) -> tuple[Benchmark, float]:
    """The benchmark of `name:task` and its median full-training time, made once per process."""
    name, _, task_name = task.partition(":")
    key = (name, task_name or None)
    if key not in _benchmarks:
        benchmark = load_benchmark(name, task_name or None, data)
        _benchmarks[key] = benchmark, benchmark.median_full_time()
    return _benchmarks[key]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), metavar="BENCHMARK:TASK",
                        help=f"default: {' '.join(DEFAULT_TASKS)}")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"default {DEFAULTS['seeds']} (--full: {FULL['seeds']})")
    parser.add_argument("--budget", type=float, default=None, metavar="MULTIPLE",
                        help=f"simulated wall-clock budget as a multiple of the task's median full-training time "
                             f"(default {DEFAULTS['budget']:g}; --full: {FULL['budget']:g})")
    parser.add_argument("--workers", type=int, default=None, help=f"simulated workers (default {DEFAULTS['workers']})")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="only these methods (names as in the tables: " +
                             ", ".join(repr(method.name) for method in METHODS) + ")")
    parser.add_argument("--no-ray", action="store_true", help="leave Ray Tune out (it is slow to import)")
    parser.add_argument("--full", action="store_true", help="more seeds and a larger budget: the docs' figures")
    parser.add_argument("--processes", type=int, default=2, help="simulations run in parallel (default 2)")
    parser.add_argument("--data", default=None, help="the benchmark data folder (default: $HPT_BENCHMARK_DATA, "
                                                     "else ../shared/benchmarks beside the repository)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="where the tables and plots go (default benchmarks/results)")
    parser.add_argument("--docs", type=Path, default=None,
                        help="also write the tables into this file between its search-quality markers")
    return parser


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SimulationError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
