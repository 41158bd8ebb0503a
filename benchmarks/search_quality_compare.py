"""A change to one of hpt's methods against the method's stored runs: is it better, by how much, on which tasks?

Run the changed method into a file of its own (a git worktree of the change, on PYTHONPATH), then compare:

    PYTHONPATH=../change python benchmarks/search_quality.py --seeds 25 --runs /tmp/change.jsonl \\
        --out /tmp/change --methods "hpt adaptive_asha + gp + adaptive fidelity"
    python benchmarks/search_quality_compare.py /tmp/change.jsonl --method "hpt adaptive_asha + gp + adaptive fidelity"

Per task, over the seeds both have: the two medians of the final regret, P (the chance that a run of the
change ends lower than a stored run: the share of pairs, ties counting half; 0.5 is no difference), and
whether each is at or below every peer's median. Then the totals: on how many tasks the change's median
is lower or higher, P averaged over the tasks, at or below every peer, and the speed against the fastest
peer (geometric mean, as the docs' tables). Regret is measured against the best value of all runs, the
change's included; peers are the non-hpt methods with a run on every seed compared (SMAC3's few seeds
leave it out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_quality import DEFAULTS, load_records, result_of  # noqa: E402
from search_quality_report import MethodSummary, TaskSummary, geometric_mean, summarise  # noqa: E402

CHANGE = "the change"


def probability_lower(change: MethodSummary, stored: MethodSummary) -> float:
    """The share of (change, stored) run pairs whose final regret is lower for the change, ties counting half."""
    ours = np.array([curve.final for curve in change.curves])[:, None]
    theirs = np.array([curve.final for curve in stored.curves])[None, :]
    return float(np.mean((ours < theirs) + 0.5 * (ours == theirs)))


def compare(summaries: Sequence[TaskSummary], method: str) -> str:
    """The markdown table and totals of the module's docstring."""
    lines = ["| task | stored median | change median | P | stored at or below every peer | change at or below |",
             "| --- | ---: | ---: | ---: | --- | --- |"]
    lower = higher = stored_level = change_level = 0
    chances, stored_speed, change_speed = [], [], []
    for summary in summaries:
        by_name = {item.method: item for item in summary.methods}
        stored, change = by_name[method], by_name[CHANGE]
        peers = [item for item in summary.methods if not item.method.startswith("hpt") and item.method != CHANGE]
        best_peer = min(item.final[0] for item in peers)
        fastest = max(summary.speedup(item) for item in peers)
        chance = probability_lower(change, stored)
        chances.append(chance)
        lower += change.final[0] < stored.final[0]
        higher += change.final[0] > stored.final[0]
        stored_level += stored.final[0] <= best_peer
        change_level += change.final[0] <= best_peer
        for speeds, item in ((stored_speed, stored), (change_speed, change)):
            if summary.speedup(item) > 0 and fastest > 0:
                speeds.append(summary.speedup(item) / fastest)
        lines.append(f"| {summary.task} | {stored.final[0]:.3g} | {change.final[0]:.3g} | {chance:.2f} "
                     f"| {'yes' if stored.final[0] <= best_peer else 'no'} "
                     f"| {'yes' if change.final[0] <= best_peer else 'no'} |")
    tasks = len(summaries)
    lines += ["", f"The change's median is lower on {lower} of {tasks} tasks and higher on {higher}; P "
              f"{np.mean(chances):.3f}; at or below every peer on {change_level} (stored: {stored_level}); "
              f"{geometric_mean(change_speed):.2f} times the fastest peer's speed "
              f"(stored: {geometric_mean(stored_speed):.2f})."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    wanted = [record for record in load_records(args.runs) if _counts(record, args)]
    changed = [{**record, "method": CHANGE} for record in load_records(args.change)
               if record["method"] == args.method and _counts(record, args)]
    if not changed:
        print(f"error: {args.change} holds no run of {args.method!r} (seeds below {args.seeds}, "
              f"{args.workers} workers, budget {args.budget:g})", file=sys.stderr)
        return 2
    seeds = {(record["task"], record["seed"]) for record in changed}
    results = [result_of(record) for record in wanted + changed if (record["task"], record["seed"]) in seeds]
    held: dict[tuple[str, str], set[int]] = {}
    for result in results:
        held.setdefault((result.method, result.task), set()).add(result.seed)
    complete = [result for result in results
                if {seed for task, seed in seeds if task == result.task} <= held[result.method, result.task]]
    order = list(dict.fromkeys(result.method for result in complete))
    summaries = [summary for summary in summarise(complete, order, {})
                 if {args.method, CHANGE} <= {item.method for item in summary.methods}]
    print(compare(summaries, args.method))
    return 0


def _counts(record: dict, args: argparse.Namespace) -> bool:
    return ("skipped" not in record and record["seed"] < args.seeds and record["workers"] == args.workers
            and record["budget_multiple"] == args.budget)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("change", type=Path, help="the runs of the changed method (a --runs file of search_quality.py)")
    parser.add_argument("--method", required=True, help="the method's name, as in the tables")
    parser.add_argument("--runs", type=Path, default=Path(__file__).resolve().parent / "results"
                        / "search_quality_runs.jsonl", help="the stored runs (default: the suite's)")
    parser.add_argument("--seeds", type=int, default=25, help="compare seeds below this (default 25)")
    parser.add_argument("--workers", type=int, default=DEFAULTS["workers"])
    parser.add_argument("--budget", type=float, default=DEFAULTS["budget"], metavar="MULTIPLE")
    return parser


if __name__ == "__main__":
    sys.exit(main())
