"""The regret curves of `search_quality.py`, their summaries (median, quartiles, time to target), tables and plots."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from search_quality_methods import ASHA, BASELINE

CURVE_POINTS = 400
SYMLOG_THRESHOLD = 0.1
"""Regret axes are logarithmic above this (0.1 percentage points of accuracy) and linear below, down to 0."""
DOCS_BEGIN = "<!-- search-quality:begin -->"
DOCS_END = "<!-- search-quality:end -->"


@dataclass(frozen=True)
class RunResult:
    """One simulated run: the incumbent (best value reported so far) after each improvement, in simulated seconds."""

    task: str
    method: str
    seed: int
    budget: float
    median_full_time: float
    smaller_is_better: bool
    best_known: float | None
    """The benchmark's own best known value for the task, if it has one."""
    incumbent: tuple[tuple[float, float], ...]
    trials: int
    wall_seconds: float

    def best(self) -> float | None:
        return self.incumbent[-1][1] if self.incumbent else None


@dataclass(frozen=True)
class RegretCurve:
    """A run's regret after each improvement: (simulated seconds, regret), against the task's best known value."""

    run: RunResult
    steps: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, run: RunResult, best_known: float) -> "RegretCurve":
        sign = 1.0 if run.smaller_is_better else -1.0
        return cls(run, tuple((time, sign * (value - best_known)) for time, value in run.incumbent))

    def at(self, times: np.ndarray) -> np.ndarray:
        """The regret at each time (inf before the first report)."""
        if not self.steps:
            return np.full(len(times), math.inf)
        step_times = np.array([time for time, _ in self.steps])
        regrets = np.array([regret for _, regret in self.steps])
        index = np.searchsorted(step_times, times, side="right") - 1
        return np.where(index >= 0, regrets[np.maximum(index, 0)], math.inf)

    @property
    def final(self) -> float:
        return self.steps[-1][1] if self.steps else math.inf

    def time_to(self, target: float) -> float:
        """The first simulated time at which the regret is at most `target` (inf if never)."""
        return next((time for time, regret in self.steps if regret <= target), math.inf)


@dataclass
class MethodSummary:
    """A method on one task over every seed: regret over time (median and quartiles) and at the end."""

    method: str
    curves: list[RegretCurve]
    times: np.ndarray
    median: np.ndarray = field(init=False)
    lower: np.ndarray = field(init=False)
    upper: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        values = np.array([curve.at(self.times) for curve in self.curves])
        self.lower, self.median, self.upper = _quartiles(values)

    @property
    def final(self) -> tuple[float, float, float]:
        """Median and quartiles of the regret at the end of the budget."""
        q25, median, q75 = _quartiles(np.array([curve.final for curve in self.curves]))
        return float(median), float(q25), float(q75)

    def time_to(self, target: float) -> float:
        """The first time the median regret curve is at most `target` (inf if never)."""
        reached = np.nonzero(self.median <= target)[0]
        return float(self.times[reached[0]]) if len(reached) else math.inf

    def seeds_reaching(self, target: float) -> int:
        return sum(curve.time_to(target) < math.inf for curve in self.curves)

    @property
    def median_trials(self) -> float:
        return float(np.median([curve.run.trials for curve in self.curves]))


@dataclass
class TaskSummary:
    """Every method on one task, with the target: the baseline's (hpt random's) median regret at the end."""

    task: str
    budget: float
    median_full_time: float
    best_known: float
    benchmark_best: float | None
    methods: list[MethodSummary]
    skipped: list[str]

    @property
    def target(self) -> float:
        return self.baseline.final[0]

    @property
    def baseline(self) -> MethodSummary:
        return next(summary for summary in self.methods if summary.method == BASELINE)

    def speedup(self, summary: MethodSummary) -> float:
        """How many times sooner than the baseline the method's median regret reaches the target (0: never)."""
        own = summary.time_to(self.target)
        return self.baseline.time_to(self.target) / own if own < math.inf else 0.0


def _quartiles(values: np.ndarray) -> np.ndarray:
    """The 25th, 50th and 75th percentiles over the first axis; inf (no report yet) where one leans on an inf."""
    interpolated = np.percentile(np.where(np.isinf(values), 1e300, values), [25, 50, 75], axis=0)
    upper_neighbours = np.percentile(values, [25, 50, 75], axis=0, method="higher")
    return np.where(np.isinf(upper_neighbours), math.inf, interpolated)


def best_known(runs: Sequence[RunResult]) -> float:
    """The best of the benchmark's best known value and every value any run reported."""
    values = [value for run in runs for value in (run.best(), run.best_known) if value is not None]
    return min(values) if runs[0].smaller_is_better else max(values)


def summarise(results: Sequence[RunResult], method_order: Sequence[str], skipped: dict[str, list[str]]
              ) -> list[TaskSummary]:
    """Group runs by task and method (in `method_order`), with regret on a common time grid per task."""
    summaries = []
    for task in dict.fromkeys(result.task for result in results):
        runs = [result for result in results if result.task == task]
        best = best_known(runs)
        times = np.linspace(runs[0].budget / CURVE_POINTS, runs[0].budget, CURVE_POINTS)
        methods = [MethodSummary(method, [RegretCurve.of(run, best) for run in runs if run.method == method], times)
                   for method in method_order if any(run.method == method for run in runs)]
        summaries.append(TaskSummary(task, runs[0].budget, runs[0].median_full_time, best, runs[0].best_known,
                                     methods, skipped.get(task, [])))
    return summaries


# --- output ------------------------------------------------------------------------------------


def write_runs_csv(summaries: Sequence[TaskSummary], path: Path) -> None:
    """One row per run: final regret, time to the task's target, trials, wall-clock seconds of the simulation."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "method", "seed", "budget_s", "best_value", "best_known", "final_regret",
                         "target_regret", "time_to_target_s", "trials", "wall_seconds"])
        for summary in summaries:
            for method in summary.methods:
                for curve in method.curves:
                    run = curve.run
                    best = run.best()
                    writer.writerow([run.task, run.method, run.seed, f"{run.budget:.1f}",
                                     _exact(math.inf if best is None else best), _exact(summary.best_known),
                                     _exact(curve.final), _exact(summary.target),
                                     _exact(curve.time_to(summary.target)), run.trials, f"{run.wall_seconds:.2f}"])


def markdown_tables(summaries: Sequence[TaskSummary], seeds: int, workers: int, budget_multiple: float) -> str:
    """The tables for docs/benchmarks.md: an overview across tasks, then one table per task."""
    lines = [overview_table(summaries), "", goals_table(summaries), ""]
    for summary in summaries:
        lines += [f"**{summary.task}**: budget {summary.budget:.0f} s of simulated time ({budget_multiple:g} × the "
                  f"median full training, {summary.median_full_time:.0f} s), {workers} workers, {seeds} seeds; "
                  f"best known {summary.best_known:.4g}{_best_note(summary)}; target regret "
                  f"{_number(summary.target)} (hpt random's median at the end)", "",
                  "| method | final regret: median [q25, q75] | time to target vs random | seeds reaching target "
                  "| trials (median) |",
                  "| --- | --- | --- | --- | --- |"]
        for method in summary.methods:
            median, q25, q75 = method.final
            lines.append(f"| {method.method} | {_number(median)} [{_number(q25)}, {_number(q75)}] | "
                         f"{_speedup(summary.speedup(method))} | {method.seeds_reaching(summary.target)}/"
                         f"{len(method.curves)} | {method.median_trials:.0f} |")
        if summary.skipped:
            lines.append(f"\nNot run on this task: {', '.join(summary.skipped)} (the grid does not fit the budget).")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def overview_table(summaries: Sequence[TaskSummary]) -> str:
    """Per method: its median final regret on each task, on how many tasks that is the lowest, how much sooner it
    reaches random's final regret, and (hpt's methods) how much sooner than the fastest peer on each task."""
    methods = list(dict.fromkeys(method.method for summary in summaries for method in summary.methods))
    header = ("| method | " + " | ".join(f"{summary.task}" for summary in summaries)
              + " | lowest on | speed-up (geo. mean) | vs fastest peer (geo. mean) |")
    lines = ["Median final regret per task (lower is better); on how many tasks it is the lowest of all methods (ties "
             "count); the geometric mean over tasks of how many times sooner than hpt random the median regret "
             "reaches random's final regret (tasks where it never does count as 0 and are left out of the mean; "
             "`n/m`: reached on n of m tasks); and for hpt's methods the geometric mean over tasks of that speed-up "
             "divided by the fastest peer's on the task (2× = in half the fastest peer's time).", "",
             header, "|" + " --- |" * (len(summaries) + 4)]
    for method in methods:
        cells, speedups, ratios, entered, lowest = [], [], [], 0, 0
        for summary in summaries:
            own = next((item for item in summary.methods if item.method == method), None)
            if own is None:
                cells.append("—")
                continue
            entered += 1
            cells.append(_number(own.final[0]))
            lowest += own.final[0] <= min(item.final[0] for item in summary.methods)
            if summary.speedup(own) > 0:
                speedups.append(summary.speedup(own))
            peer = max((summary.speedup(item) for item in summary.methods if not item.method.startswith("hpt")),
                       default=0.0)
            if method.startswith("hpt") and summary.speedup(own) > 0 and peer > 0:
                ratios.append(summary.speedup(own) / peer)
        mean = geometric_mean(speedups)
        versus = f"{_speedup(geometric_mean(ratios))} ({len(ratios)}/{entered})" if ratios else "—"
        lines.append(f"| {method} | " + " | ".join(cells)
                     + f" | {lowest}/{entered} | {_speedup(mean)} ({len(speedups)}/{entered}) | {versus} |")
    return "\n".join(lines)


def goals_table(summaries: Sequence[TaskSummary]) -> str:
    """Per hpt method with a model or adaptive fidelity: on how many tasks its median final regret is at or below
    every peer's, and on which it is worse than hpt adaptive_asha's (random sampling) by more than that method's
    interquartile range."""
    methods = [name for name in dict.fromkeys(method.method for summary in summaries for method in summary.methods)
               if name.startswith("hpt") and name not in (BASELINE, ASHA)]
    lines = [f"Against the peers and against `{ASHA}` (random sampling): on how many tasks a method's median final "
             "regret is at or below every peer's, and the tasks where it is above hpt adaptive_asha's median by more "
             "than hpt adaptive_asha's interquartile range (q75 - q25).", "",
             "| method | at or below every peer | worse than hpt adaptive_asha by more than its spread |",
             "| --- | --- | --- |"]
    for method in methods:
        entered, level, worse = 0, 0, []
        for summary in summaries:
            own = next((item for item in summary.methods if item.method == method), None)
            asha = next((item for item in summary.methods if item.method == ASHA), None)
            peers = [item.final[0] for item in summary.methods if not item.method.startswith("hpt")]
            if own is None:
                continue
            entered += 1
            level += bool(peers) and own.final[0] <= min(peers)
            if asha is not None and own.final[0] - asha.final[0] > asha.final[2] - asha.final[1]:
                worse.append(summary.task)
        lines.append(f"| {method} | {level}/{entered} | {len(worse)}/{entered}"
                     + (f": {', '.join(worse)}" if worse else "") + " |")
    return "\n".join(lines)


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(np.mean(np.log(values))) if values else 0.0


def update_docs(docs: Path, text: str) -> None:
    """Replace what stands between the search-quality markers of `docs` with `text`."""
    content = docs.read_text()
    if DOCS_BEGIN not in content or DOCS_END not in content:
        raise SystemExit(f"{docs} has no {DOCS_BEGIN} ... {DOCS_END} section to update")
    head, rest = content.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    docs.write_text(f"{head}{DOCS_BEGIN}\n{text}{DOCS_END}{tail}")


def plot_regret(summaries: Sequence[TaskSummary], path: Path) -> None:
    """Regret over simulated time per task: median line, quartile band, one colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(summaries))
    rows = math.ceil(len(summaries) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.9 * rows), squeeze=False)
    colours = _colours([method.method for summary in summaries for method in summary.methods])
    for axis, summary in zip(axes.flat, summaries):
        scale = summary.median_full_time
        highest = 0.0
        for method in summary.methods:
            style = "-" if method.method.startswith("hpt") else ("--" if method.method.startswith("optuna") else ":")
            x = method.times / scale
            median, lower, upper = (np.where(np.isinf(curve), np.nan, curve)
                                    for curve in (method.median, method.lower, method.upper))
            highest = max(highest, float(np.nanmax(median, initial=0.0)))
            axis.plot(x, median, style, color=colours[method.method], label=method.method, linewidth=1.6)
            axis.fill_between(x, lower, upper, color=colours[method.method], alpha=0.12, linewidth=0)
        axis.axhline(summary.target, color="grey", linewidth=0.8, linestyle="-.")
        axis.set_yscale("symlog", linthresh=SYMLOG_THRESHOLD)
        axis.set_ylim(0, highest * 1.5 or 1.0)
        axis.set_xlim(0, summary.budget / scale)
        axis.set_title(summary.task, fontsize=10)
        axis.set_xlabel("simulated time / median full training")
        axis.set_ylabel("regret (median, quartiles)")
        axis.grid(alpha=0.3, which="both")
    for axis in list(axes.flat)[len(summaries):]:
        axis.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.08 if rows == 1 else 0.05, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_final_regret(summaries: Sequence[TaskSummary], path: Path) -> None:
    """Box plots of the final regret per task and method (one box per method, over the seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(summaries))
    rows = math.ceil(len(summaries) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.2 * rows), squeeze=False)
    colours = _colours([method.method for summary in summaries for method in summary.methods])
    for axis, summary in zip(axes.flat, summaries):
        finals = [[curve.final for curve in method.curves] for method in summary.methods]
        boxes = axis.boxplot(finals, vert=False, patch_artist=True, widths=0.6)
        for box, method in zip(boxes["boxes"], summary.methods):
            box.set_facecolor(colours[method.method])
            box.set_alpha(0.5)
        axis.set_yticks(range(1, len(summary.methods) + 1), [method.method for method in summary.methods],
                        fontsize=7)
        axis.invert_yaxis()
        axis.set_xscale("symlog", linthresh=SYMLOG_THRESHOLD)
        axis.set_xlim(left=0)
        axis.set_title(f"{summary.task}: regret at the end", fontsize=10)
        axis.grid(alpha=0.3, axis="x", which="both")
    for axis in list(axes.flat)[len(summaries):]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _best_note(summary: TaskSummary) -> str:
    if summary.benchmark_best is None:
        return " (the best any run found)"
    if summary.best_known == summary.benchmark_best:
        return " (the benchmark's)"
    return f" (found in these runs; the benchmark's is {summary.benchmark_best:.4g})"


def _colours(methods: Sequence[str]) -> dict[str, tuple[float, ...]]:
    import matplotlib

    names = list(dict.fromkeys(methods))
    palette = matplotlib.colormaps["tab10"]
    return {name: palette(index % 10) for index, name in enumerate(names)}


def _number(value: float) -> str:
    if math.isinf(value):
        return "∞"
    return f"{value + 0.0:.3g}" if abs(value) >= 5e-4 else "0"


def _exact(value: float) -> str:
    return f"{value + 0.0:.6g}"


def _speedup(value: float) -> str:
    return "never" if value == 0 else f"{value:.2g}×"
