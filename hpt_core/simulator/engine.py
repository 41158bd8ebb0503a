"""Discrete-event simulation of a search on a benchmark, with N simulated workers and simulated time.

`simulate(searcher, benchmark, workers, budget)` plays a search method the way the controller
runs it, with no processes, controller or storage; trials "train" by looking their metrics up:

- `Create`: the trial exists (`on_trial_created`); it holds no worker until it has work.
- `ValidateAfter(length)`: the trial waits for a free worker (first come, first served), then
  trains from the length it reached to `length`, taking the benchmark's time for those epochs,
  and reports the benchmark's metrics at `length` (`on_validation_completed`). A trial that is
  given more work when it reports keeps its worker; one that is not (a paused ASHA trial) frees
  it, and once resumed waits for a worker again and goes on from the length it reached: no work
  is lost.
- `Close`: the trial ends (`on_trial_closed`); work it still had is dropped, a running trial
  stops at once.
- `Create` with a checkpoint (PBT): the child continues its parent's curve from the parent's
  position (the parent's own start plus the length it reached), looked up with the child's
  hyperparameters; the child's lengths count from 0 and it pays only for its own epochs. This is
  an approximation: a real child's curve after a change of hyperparameters is not the curve the
  benchmark recorded for those hyperparameters from the start.
- A benchmark that raises `InvalidHP` ends the trial early (`INVALID_HP`) before it trains.

Simulated time jumps from event to event (a worker finishing its work); the simulation ends at
the search's Shutdown or at the budget, where work still running is cut off unreported.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

from hpt_core.errors import InvalidHP, SearcherError
from hpt_core.lifecycle import SearchDriver
from hpt_core.operations import Close, Create, ExitedReason, Operation, Shutdown, ValidateAfter
from hpt_core.searchers.base import SearchMethod
from hpt_core.simulator.benchmarks import Benchmark, SimulationError

MAX_OPERATIONS = 10_000_000


@dataclass(frozen=True)
class Report:
    """One validation: when (simulated seconds), which trial, after which length, the metrics."""

    time: float
    request_id: int
    length: int
    metrics: Mapping[str, float]


@dataclass
class SimulatedTrial:
    """A trial of the simulation: its hyperparameters, where its curve starts, how far it trained."""

    request_id: int
    hparams: dict[str, Any]
    start: int = 0
    """The curve position of the trial's length 0 (a PBT child's parent position; 0 otherwise)."""
    length: int = 0
    closed: bool = False
    exited: ExitedReason | None = None

    @property
    def position(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class SimulationResult:
    """What a simulated search did: its trials, every report in time order, and the clock at the end."""

    metric: str
    smaller_is_better: bool
    workers: int
    trials: Mapping[int, SimulatedTrial]
    reports: tuple[Report, ...]
    elapsed: float
    """Simulated seconds from the start to the Shutdown, or to the budget."""
    shut_down: bool
    """Whether the search ended by itself (else the budget ended it)."""
    busy: float = field(default=0.0)
    """Worker-seconds spent training (work cut off at the budget included)."""

    def value(self, report: Report) -> float:
        return float(report.metrics[self.metric])

    def best(self) -> Report | None:
        """The report with the best searcher metric (the earliest of equals), if any."""
        best: Report | None = None
        for report in self.reports:
            if best is None or self._better(self.value(report), self.value(best)):
                best = report
        return best

    def incumbent(self, length: int | None = None) -> list[tuple[float, float]]:
        """(time, best value so far) at every report that improved on all before it (only reports after
        `length`, if given)."""
        steps: list[tuple[float, float]] = []
        for report in self.reports:
            if length is not None and report.length != length:
                continue
            value = self.value(report)
            if not steps or self._better(value, steps[-1][1]):
                steps.append((report.time, value))
        return steps

    def lengths(self) -> dict[int, int]:
        """Per request id, the length the trial trained to (0 if it never trained)."""
        return {request_id: trial.length for request_id, trial in self.trials.items()}

    def utilisation(self) -> float:
        """The share of the workers' time spent training."""
        return self.busy / (self.workers * self.elapsed) if self.elapsed > 0 else 0.0

    def _better(self, value: float, than: float) -> bool:
        return value < than if self.smaller_is_better else value > than


def simulate(searcher: SearchMethod, benchmark: Benchmark, workers: int = 4, budget: float | None = None,
             max_operations: int = MAX_OPERATIONS) -> SimulationResult:
    """Run `searcher` on `benchmark` with `workers` simulated workers until its Shutdown or `budget` seconds.

    Raises `SimulationError` for a bad setting or a length the benchmark has no results for, and
    `SearcherError` if the method stops asking for anything before its Shutdown, asks for more
    than `max_operations` operations, or breaks the protocol (the checks of `lifecycle.SearchDriver`).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SimulationError(f"workers must be an integer ≥ 1, got {workers!r}")
    if budget is not None and not budget > 0:
        raise SimulationError(f"the budget must be a number of simulated seconds > 0, got {budget!r}")
    return _Simulation(searcher, benchmark, workers, budget, max_operations).run()


class _Simulation:
    def __init__(self, searcher: SearchMethod, benchmark: Benchmark, workers: int, budget: float | None,
                 max_operations: int) -> None:
        self.searcher = searcher
        self.driver = SearchDriver(searcher)
        self.benchmark = benchmark
        self.workers = workers
        self.budget = budget
        self.max_operations = max_operations
        self.clock = 0.0
        self.free_workers = workers
        self.trials: dict[int, SimulatedTrial] = {}
        self.work: dict[int, deque[int]] = {}
        self.ready: dict[int, None] = {}
        self.running: dict[int, tuple[int, float, float]] = {}
        self.finished_work: list[tuple[float, int, int]] = []
        self.next_sequence = 0
        self.reports: list[Report] = []
        self.busy = 0.0
        self.operations = 0
        self.shut_down = False

    def run(self) -> SimulationResult:
        self._carry_out(self.driver.send("initial_operations"))
        while not self.shut_down:
            self._dispatch()
            if self.shut_down:
                break
            event = self._next_event()
            if event is None:
                raise SearcherError(f"{self.driver.method} stopped before its Shutdown")
            finish, request_id = event
            if self.budget is not None and finish > self.budget:
                self._stop_at(self.budget)
                break
            self.clock = finish
            self._complete(request_id)
        return SimulationResult(self.searcher.config.metric, self.searcher.config.smaller_is_better, self.workers,
                                self.trials, tuple(self.reports), self.clock, self.shut_down, self.busy)

    # --- operations ----------------------------------------------------------------------------

    def _carry_out(self, operations: list[Operation]) -> None:
        pending = deque(operations)
        while pending and not self.shut_down:
            operation = pending.popleft()
            self.operations += 1
            if self.operations > self.max_operations:
                raise SearcherError(f"the search asked for more than {self.max_operations} operations "
                                    "without a Shutdown")
            if isinstance(operation, Shutdown):
                self.shut_down = True
            elif isinstance(operation, Create):
                self._create(operation)
                pending.extend(self.driver.send("on_trial_created", operation.request_id))
            elif isinstance(operation, ValidateAfter):
                self._queue(operation)
            elif isinstance(operation, Close):
                trial = self.trials[operation.request_id]
                if not trial.closed:
                    self._end(trial)
                    pending.extend(self.driver.send("on_trial_closed", trial.request_id))

    def _create(self, operation: Create) -> None:
        start = 0 if operation.checkpoint is None else self.trials[operation.checkpoint].position
        self.trials[operation.request_id] = SimulatedTrial(operation.request_id, dict(operation.hparams), start)
        self.work[operation.request_id] = deque()

    def _queue(self, operation: ValidateAfter) -> None:
        trial = self.trials[operation.request_id]
        if trial.closed:
            raise SearcherError(f"{operation} names a trial that exited early")
        self.work[trial.request_id].append(operation.length)
        if trial.request_id not in self.running:
            self.ready.setdefault(trial.request_id, None)

    def _end(self, trial: SimulatedTrial) -> None:
        """Close a trial: drop its work; a running trial stops now and frees its worker."""
        trial.closed = True
        self.work[trial.request_id].clear()
        self.ready.pop(trial.request_id, None)
        running = self.running.pop(trial.request_id, None)
        if running is not None:
            self.busy += self.clock - running[1]
            self.free_workers += 1

    # --- workers -------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Give free workers to the trials waiting for one, in the order they asked."""
        while self.free_workers and self.ready and not self.shut_down:
            request_id = next(iter(self.ready))
            del self.ready[request_id]
            self.free_workers -= 1
            self._start(request_id)

    def _start(self, request_id: int) -> None:
        """Start the trial's next work on a worker already taken for it (freed again if the trial cannot train)."""
        trial = self.trials[request_id]
        target = self.work[request_id][0]
        try:
            before = self.benchmark.lookup(trial.hparams, trial.position).elapsed if trial.position else 0.0
            after = self.benchmark.lookup(trial.hparams, trial.start + target).elapsed
        except InvalidHP:
            self.free_workers += 1
            self._exit_early(trial, ExitedReason.INVALID_HP)
            return
        duration = max(after - before, 0.0)
        sequence = self.next_sequence
        self.next_sequence += 1
        self.running[request_id] = (sequence, self.clock, duration)
        heapq.heappush(self.finished_work, (self.clock + duration, sequence, request_id))

    def _next_event(self) -> tuple[float, int] | None:
        """Take the next work to finish (time, request id), skipping work of trials closed while running."""
        while self.finished_work:
            finish, sequence, request_id = heapq.heappop(self.finished_work)
            running = self.running.get(request_id)
            if running is not None and running[0] == sequence:
                return finish, request_id
        return None

    def _complete(self, request_id: int) -> None:
        _, _, duration = self.running.pop(request_id)
        self.busy += duration
        trial = self.trials[request_id]
        trial.length = self.work[request_id].popleft()
        metrics = dict(self.benchmark.lookup(trial.hparams, trial.position).metrics)
        self.reports.append(Report(self.clock, request_id, trial.length, metrics))
        self._carry_out(self.driver.send("on_validation_completed", request_id, metrics, trial.length))
        if self.work[request_id] and not trial.closed and not self.shut_down:
            self.ready.pop(request_id, None)
            self._start(request_id)
        else:
            self.free_workers += 1

    def _exit_early(self, trial: SimulatedTrial, reason: ExitedReason) -> None:
        trial.exited = reason
        self._end(trial)
        self._carry_out(self.driver.send("on_trial_exited_early", trial.request_id, reason))
        self._carry_out(self.driver.send("on_trial_closed", trial.request_id))

    def _stop_at(self, budget: float) -> None:
        """The budget ran out: work still running is cut off (its time so far counts as busy)."""
        self.clock = budget
        self.busy += sum(self.clock - started for _, started, _ in self.running.values())
        self.running.clear()
