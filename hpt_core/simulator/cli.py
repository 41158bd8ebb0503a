"""`hpt simulate CONFIG --benchmark NAME`: a search in simulated time on a benchmark of recorded curves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpt_core.errors import SearcherError
from hpt_core.plugins import create_searcher
from hpt_core.safe_yaml import load_yaml
from hpt_core.simulator.benchmarks import SimulationError
from hpt_core.simulator.engine import simulate
from hpt_core.simulator.experiment import experiment_for
from hpt_core.simulator.registry import BUILTIN_BENCHMARKS, load_benchmark
from hpt_core.simulator.summary import duration, render_summary

DEFAULT_WORKERS = 4


def add_simulate_command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `hpt simulate` to the top-level subcommands (its handler is `args.handler`)."""
    parser = commands.add_parser(
        "simulate", help="run a search on a benchmark of recorded curves, in simulated time",
        description="Run the experiment file's search method against a benchmark's recorded or surrogate "
                    "learning curves with N simulated workers: trials look their metrics up and take the "
                    "benchmark's time to train, so a search of GPU-hours takes seconds.")
    parser.add_argument("config", help="the experiment file (YAML); without hyperparameters or searcher.metric, "
                                       "the benchmark's are used")
    parser.add_argument("--benchmark", required=True, metavar="NAME",
                        help=f"{', '.join(BUILTIN_BENCHMARKS)}, or your own as module:Class")
    parser.add_argument("--task", default=None, help="the benchmark's task (default: its first)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"simulated workers training trials side by side (default {DEFAULT_WORKERS})")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="stop after this much simulated time (default: when the search ends)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the search method's seed (default: reproducibility.experiment_seed, else 0)")
    parser.add_argument("--data", default=None, metavar="PATH",
                        help="the folder holding the benchmark data (default: $HPT_BENCHMARK_DATA, "
                             "else ../shared/benchmarks beside the repository)")
    parser.set_defaults(handler=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    """Carry out `hpt simulate` and print its summary; 2 for a setting or data the simulation cannot use."""
    try:
        benchmark = load_benchmark(args.benchmark, args.task, args.data)
        config = experiment_for(benchmark, load_yaml(Path(args.config).read_bytes(), args.config), args.config)
        searcher = create_searcher(config, seed=args.seed)
        budget = f", budget {duration(args.budget)}" if args.budget is not None else ""
        print(f"simulating {searcher.name} on {benchmark.describe()} ({config.searcher.metric}, "
              f"{args.workers} workers{budget})", flush=True)
        if 0 < config.searcher.max_concurrent_trials < args.workers:
            print(f"note: searcher.max_concurrent_trials is {config.searcher.max_concurrent_trials}, so some of the "
                  f"{args.workers} workers stay idle")
        result = simulate(searcher, benchmark, args.workers, args.budget)
    except (SimulationError, SearcherError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render_summary(result, searcher, benchmark))
    return 0
