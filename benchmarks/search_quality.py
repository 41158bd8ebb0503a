"""Search quality: hpt's search methods against their peers', in simulated time on tabular and synthetic benchmarks.

Every method runs on the same tasks with the same simulated workers and the same simulated
wall-clock budget (a multiple of the task's median full-training time), over several seeds
(`hpt_core.simulator` plays each search; see docs/benchmarks.md). Regret is the best value
known for the task minus the best value reported so far (on the synthetic Hartmann tasks, only
full-length reports count: their low fidelities are blurred on purpose). Each finished run is
appended to --runs (default benchmarks/results/search_quality_runs.jsonl) at once, and a run
already there is not run again: a long suite can be run in parts (`--tasks`, `--seeds`,
`--methods`) and resumed after an interruption, and the tables are made from every stored run of
the tasks and methods asked for. Writes to --out (default benchmarks/results/):
search_quality.csv (one row per run), search_quality.md (the tables), regret_over_time.png and
final_regret.png; with --docs, also the tables into docs/benchmarks.md between its
search-quality markers.

    python benchmarks/search_quality.py --tasks lcbench:167168 --seeds 3     # a part of the suite
    python benchmarks/search_quality.py --full --docs docs/benchmarks.md    # the whole suite, 25 seeds

Needs the `benchmarks` extra (onnxruntime, optuna, matplotlib; the peers that install: see
search_quality_peers.py); `--no-ray` leaves Ray Tune out. `hpt random`, against which the time to
target is measured, is run whatever `--methods` names.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_quality_methods import BASELINE, METHODS, Method, Run  # noqa: E402
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

LCBENCH_SUITE = ("167168", "189873", "189906", "3945", "7593", "34539", "126025", "126026", "126029", "146212")
DEFAULT_TASKS = (tuple(f"lcbench:{task}" for task in LCBENCH_SUITE)
                 + ("nasbench201:cifar10", "nasbench201:cifar100", "nasbench201:ImageNet16-120")
                 + tuple(f"hartmann:h{dimensions}-{quality}" for dimensions in (3, 6)
                         for quality in ("good", "bad", "terrible")))
FULL_LENGTH_ONLY = frozenset({"hartmann"})
"""Benchmarks whose regret counts only full-length reports (their low fidelities are biased and noisy)."""
DEFAULTS = {"seeds": 10, "budget": 25.0, "workers": 4}
FULL = {"seeds": 25, "budget": 40.0, "workers": 4}

_benchmarks: dict[tuple[str, str | None], tuple[Benchmark, float]] = {}

Job = tuple[str, str, int, int, float, "str | None"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = FULL if args.full else DEFAULTS
    seeds = args.seeds or settings["seeds"]
    budget_multiple = args.budget or settings["budget"]
    workers = args.workers or settings["workers"]
    if args.methods and BASELINE not in args.methods:
        print(f"also running {BASELINE!r}: the time to target is measured against it", flush=True)
    asked = set(args.methods or [method.name for method in METHODS]) | {BASELINE}
    methods = [method for method in METHODS if method.name in asked and not (args.no_ray and method.library == "ray")]
    missing = [method.name for method in methods if not installed(method)]
    if missing:
        print(f"left out, their library is not installed: {', '.join(missing)}", flush=True)
    methods = [method for method in methods if installed(method)]
    args.out.mkdir(parents=True, exist_ok=True)
    runs_file = args.runs or args.out / "search_quality_runs.jsonl"

    stored = [record for record in load_records(runs_file)
              if record["workers"] == workers and record["budget_multiple"] == budget_multiple]
    done = {(record["task"], record["method"], record["seed"]) for record in stored}
    jobs = [(task, method.name, seed, workers, budget_multiple, args.data)
            for task in args.tasks for method in methods for seed in range(seeds)
            if (task, method.name, seed) not in done]
    print(f"{len(jobs)} runs to make ({len(done)} stored in {runs_file}): {len(args.tasks)} tasks x "
          f"{len(methods)} methods x {seeds} seeds, {workers} workers, budget {budget_multiple:g} x the median "
          f"full training; {args.processes} process(es)", flush=True)
    started = time.monotonic()
    with runs_file.open("a") as handle:
        for count, record in enumerate(run_jobs(jobs, args.processes), start=1):
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            stored.append(record)
            if count % max(len(jobs) // 20, 1) == 0:
                print(f"  {count}/{len(jobs)} runs, {time.monotonic() - started:.0f} s", flush=True)

    wanted = [record for record in stored if record["task"] in args.tasks and record["seed"] < seeds
              and record["method"] in {method.name for method in methods}]
    results = [result_of(record) for record in wanted if "skipped" not in record]
    skipped: dict[str, list[str]] = {}
    for record in wanted:
        if "skipped" in record and record["method"] not in skipped.setdefault(record["task"], []):
            skipped[record["task"]].append(record["method"])
    order = {task: index for index, task in enumerate(args.tasks)}
    results.sort(key=lambda result: (order[result.task], result.seed))
    summaries = summarise(results, [method.name for method in methods], skipped)
    command = " ".join(["python benchmarks/search_quality.py", shlex.join(argv or sys.argv[1:])])
    tables = markdown_tables(summaries, seeds, workers, budget_multiple)
    simulated = sum(record.get("wall_seconds", 0.0) for record in wanted)
    footer = (f"Made by `{command}` from {len(results)} runs stored in `{_relative(runs_file)}` "
              f"({simulated / 60:.0f} minutes of simulation in all, {os.cpu_count()} cores); plots: "
              f"`{_relative(args.out / 'regret_over_time.png')}`, `{_relative(args.out / 'final_regret.png')}`.\n")
    (args.out / "search_quality.md").write_text(tables + "\n" + footer)
    write_runs_csv(summaries, args.out / "search_quality.csv")
    plot_regret(summaries, args.out / "regret_over_time.png")
    plot_final_regret(summaries, args.out / "final_regret.png")
    if args.docs:
        update_docs(args.docs, tables + "\n" + footer)
    print(tables + "\n" + footer)
    return 0


def installed(method: Method) -> bool:
    """Whether the method's library can be imported (hpt's always can)."""
    return method.library == "hpt" or importlib.util.find_spec(method.library) is not None


def run_jobs(jobs: list[Job], processes: int) -> Iterator[dict[str, Any]]:
    """Each job's record as it finishes: in this process with `processes` 1, else in a pool."""
    if processes <= 1:
        yield from map(run_job, jobs)
        return
    with ProcessPoolExecutor(max_workers=processes) as pool:
        yield from pool.map(run_job, jobs, chunksize=1)


def load_records(path: Path) -> list[dict[str, Any]]:
    """The runs stored in `path` (a JSON object per line; a line cut off by an interruption is left out)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def result_of(record: dict[str, Any]) -> RunResult:
    fields = {name: record[name] for name in RunResult.__dataclass_fields__}
    fields["incumbent"] = tuple(tuple(step) for step in fields["incumbent"])
    return RunResult(**fields)


def run_job(job: Job) -> dict[str, Any]:
    """Simulate one method on one task with one seed: the run's record (marked skipped where the method does
    not apply)."""
    task, method_name, seed, workers, budget_multiple, data = job
    record: dict[str, Any] = {"task": task, "method": method_name, "seed": seed, "workers": workers,
                              "budget_multiple": budget_multiple}
    benchmark, full = _benchmark(task, data)
    run = Run(benchmark, full, seed, workers, budget_multiple * full)
    method: Method = next(method for method in METHODS if method.name == method_name)
    if not method.applies(run):
        return {**record, "skipped": True}
    started = time.monotonic()
    result = simulate(method.build(run), benchmark, workers, run.budget)
    full_only = benchmark.name in FULL_LENGTH_ONLY
    outcome = RunResult(task, method_name, seed, run.budget, full, benchmark.smaller_is_better,
                        benchmark.best_value(), tuple(result.incumbent(benchmark.max_length if full_only else None)),
                        len(result.trials), time.monotonic() - started)
    return {**record, **asdict(outcome)}


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
    parser.add_argument("--processes", type=int, default=1,
                        help="simulations run in parallel (default 1: in this process, no pool)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="the stored runs to resume from and add to (default OUT/search_quality_runs.jsonl)")
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
