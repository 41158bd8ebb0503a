"""How long `searcher.sampler: tpe` (or `gp`) takes to propose a configuration, with many results recorded.

A `random` search with `sampler: tpe` (`--sampler gp`: the GP) records N finished trials of random configurations (a random
objective), through the hooks with which a search method records its trials: each with one result,
or, as adaptive ASHA's rungs hold them, N results at a first length, N/4 of those trials also at a
second and N/16 at a third (the model is then fitted on all three lengths); then
`propose_hparams()` is timed REPEATS times (the model is rebuilt from the recorded results at every
proposal, as in a real search, from the lookup index the method keeps in step with its recorded
trials), in wall-clock and in CPU time (the process's: on a machine shared with other work the
wall-clock time also counts the waits for a core). Also timed: restoring a method from that state and its
first proposal (which rebuilds the index in one pass over the trials), and the JSON dump of the
whole search-method state, which the controller saves with each snapshot. Two spaces: LCBench's 7
mixed hyperparameters and NAS-Bench-201's 6 categorical ones. The GP keeps its fitted
hyperparameters in the state and refits them only as the results grow by a tenth, so repeated
proposals over the same results condition the model without fitting it; its table also times a
proposal that fits it afresh (its first fit, as when the results have just grown).
Writes benchmarks/results/tpe_proposal.md (gp_proposal.md).

    python benchmarks/tpe_proposal.py                               # N = 100, 1000 and 10,000
    python benchmarks/tpe_proposal.py --sampler gp
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hpt_core import create_searcher
from hpt_core.searchers import SearchMethod
from hpt_core.simulator.lcbench import HYPERPARAMETERS as LCBENCH_SPACE
from hpt_core.simulator.nasbench201 import EDGES, OPERATIONS

SPACES: dict[str, dict[str, Any]] = {
    "lcbench (7: log, double, int)": LCBENCH_SPACE,
    "nasbench201 (6 categorical)": {edge: {"type": "categorical", "vals": list(OPERATIONS)} for edge in EDGES},
}
RESULTS = Path(__file__).resolve().parent / "results"


LAYOUTS = {"1 length": 1, "3 lengths (N, N/4, N/16)": 3}
"""How many lengths the recorded trials report at; each length holds a quarter of the previous one's results."""


def searcher_with_results(space: dict[str, Any], results: int, lengths: int = 1, seed: int = 0,
                          sampler: str = "tpe") -> SearchMethod:
    """A random + `sampler` search that has recorded `results` finished trials, the first results / 4**k of them with
    a result at each length k + 1 of `lengths` too."""
    method = create_searcher({"searcher": {"name": "random", "metric": "loss", "max_length": 1,
                                           "max_trials": results + 1, "max_concurrent_trials": 1, "sampler": sampler},
                              "hyperparameters": space}, seed=seed)
    draws = np.random.default_rng(seed)
    for request_id in range(1, results + 1):
        method.remember_created(request_id, method.space.sample(draws))
        for length in range(1, lengths + 1):
            if request_id <= results / 4 ** (length - 1):
                method.remember_result(request_id, length, float(draws.random()))
        method.remember_closed(request_id)
    return method


def restored_method(space: dict[str, Any], state: dict[str, Any], sampler: str) -> SearchMethod:
    """A new method of `searcher_with_results`'s kind with `state` loaded, as a resumed experiment has it."""
    method = searcher_with_results(space, 0, sampler=sampler)
    method.load_state_dict(state)
    return method


def milliseconds(action: Any, repeats: int, clock: Any = time.perf_counter) -> tuple[float, float]:
    """Median and 95th percentile of `action()`'s time on `clock`, in ms."""
    times = []
    for _ in range(repeats):
        started = clock()
        action()
        times.append(clock() - started)
    return float(np.median(times) * 1e3), float(np.percentile(times, 95) * 1e3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, nargs="+", default=[100, 1000, 10_000], metavar="N")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--sampler", choices=["tpe", "gp"], default="tpe")
    args = parser.parse_args(argv)
    fits = args.sampler == "gp"
    lines = ["| space | results recorded | lengths | proposal: median (ms) | proposal: p95 (ms) "
             "| proposal, CPU: median (ms) | proposal, CPU: p95 (ms) | restore + first proposal: median (ms) "
             "| state as JSON: median (ms) |" + (" proposal with a first fit: median (ms) |" if fits else ""),
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if fits else "")]
    for name, space in SPACES.items():
        for (layout, lengths), count in itertools.product(LAYOUTS.items(), args.results):
            method = searcher_with_results(space, count, lengths, sampler=args.sampler)
            proposal = milliseconds(method.propose_hparams, args.repeats)
            cpu = milliseconds(method.propose_hparams, args.repeats, time.process_time)
            state = milliseconds(lambda: json.dumps(method.state_dict()), max(args.repeats // 10, 5))
            saved = json.loads(json.dumps(method.state_dict()))
            restored = milliseconds(lambda: restored_method(space, saved, args.sampler).propose_hparams(),
                                    max(args.repeats // 10, 5))
            lines.append(f"| {name} | {count} | {layout} | {proposal[0]:.1f} | {proposal[1]:.1f} | {cpu[0]:.1f} "
                         f"| {cpu[1]:.1f} | {restored[0]:.1f} | {state[0]:.1f} |")
            if fits:
                history = method.sampler_history
                refit = milliseconds(lambda: (history.pop("gp", None), method.propose_hparams()),
                                     max(args.repeats // 10, 5))
                lines[-1] += f" {refit[0]:.1f} |"
            print(lines[-1], flush=True)
    command = "python benchmarks/tpe_proposal.py" + "".join(f" {arg}" for arg in (argv or sys.argv[1:]))
    footer = (f"\nMade by `{command}` ({args.repeats} proposals each, {os.cpu_count()} cores shared with other "
              f"work). A tenth of proposals are random samples and take microseconds; the model's take the rest.\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.sampler}_proposal.md").write_text("\n".join(lines) + "\n" + footer)
    print(footer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
