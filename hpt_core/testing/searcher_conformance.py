"""A conformance suite for search methods: a simulated controller plus the checks every method must pass.

(Longer than hpt's ~400-line habit: it ships to users as one importable module with its fixtures.)

`drive()` plays a search to its end the way the controller does: it creates the trials a
method asks for, trains them in a random interleaving, reports validations, injects early exits
and closes trials. The `check_*` functions inspect the recorded run and raise `ConformanceError`
with a message that says what must hold and what happened. `SearchMethodConformance` bundles them
as pytest tests; subclass it once per method (or per config)::

    from hpt_core import create_searcher
    from hpt_core.testing import SearchMethodConformance

    class TestMySearch(SearchMethodConformance):
        def make_searcher(self):
            return create_searcher({"searcher": {"name": "custom", "class": "my_pkg:MySearch",
                                                 "metric": "loss"},
                                    "hyperparameters": {"lr": {"type": "log", "minval": -4, "maxval": -1}}})

Importing this module needs pytest (for the fixtures of `SearchMethodConformance`).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pytest

from hpt_core.operations import Close, Create, ExitedReason, Operation, Shutdown, ValidateAfter
from hpt_core.searchers.base import SearchMethod

MetricFn = Callable[[int, Mapping[str, Any], int], Any]
"""(request_id, hparams, length) -> the reported validation metrics (a mapping or a number)."""

ExitFn = Callable[[int, int], "ExitedReason | None"]
"""(request_id, length) -> why the trial exits before reaching `length`, or None if it gets there."""

SearcherFactory = Callable[[], SearchMethod]


class ConformanceError(AssertionError):
    """A search method broke the search-method protocol."""


# --- recording a run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One call into a search method, e.g. `Event("on_trial_closed", (3,))`."""

    name: str
    args: tuple[Any, ...] = ()

    def send(self, searcher: SearchMethod) -> list[Operation]:
        return list(getattr(searcher, self.name)(*self.args))

    def __str__(self) -> str:
        return f"{self.name}({', '.join(map(repr, self.args))})"


@dataclass(frozen=True)
class Step:
    """An event, the operations it returned, and `progress()` right after it."""

    event: Event
    operations: list[Operation]
    progress: float


@dataclass
class SimulatedTrial:
    """A trial as the simulated controller sees it."""

    request_id: int
    hparams: dict[str, Any]
    checkpoint: int | None
    work: deque[tuple[str, int]] = field(default_factory=deque, repr=False)
    reported_lengths: list[int] = field(default_factory=list)
    exit_reason: ExitedReason | None = None
    closed: bool = False


@dataclass
class SearchRun:
    """Everything that happened in one `drive()`."""

    steps: list[Step] = field(default_factory=list)
    trials: dict[int, SimulatedTrial] = field(default_factory=dict)

    @property
    def events(self) -> list[Event]:
        return [step.event for step in self.steps]

    @property
    def operations(self) -> list[Operation]:
        return [operation for step in self.steps for operation in step.operations]

    @property
    def shutdowns(self) -> list[Shutdown]:
        return [operation for operation in self.operations if isinstance(operation, Shutdown)]

    def open_trials(self) -> list[int]:
        return [request_id for request_id, trial in self.trials.items() if not trial.closed]


# --- the simulated controller ------------------------------------------------------------------


class _SimulatedController:
    def __init__(self, searcher: SearchMethod, metric_fn: MetricFn, exit_fn: ExitFn | None) -> None:
        self.searcher = searcher
        self.metric_fn = metric_fn
        self.exit_fn = exit_fn
        self.run = SearchRun()

    def send(self, event: Event) -> None:
        operations = event.send(self.searcher)
        self.run.steps.append(Step(event, operations, self.searcher.progress()))
        for operation in operations:
            self._carry_out(operation)

    def busy_trials(self) -> list[SimulatedTrial]:
        return [trial for trial in self.run.trials.values() if trial.work and not trial.closed]

    def advance(self, trial: SimulatedTrial) -> None:
        """Carry out the trial's next piece of work: train and validate (or exit early), or close."""
        kind, length = trial.work.popleft()
        if kind == "close":
            self._close(trial)
            return
        reason = self.exit_fn(trial.request_id, length) if self.exit_fn else None
        if reason is not None:
            trial.exit_reason = ExitedReason(reason)
            self.send(Event("on_trial_exited_early", (trial.request_id, trial.exit_reason)))
            self._close(trial)
            return
        trial.reported_lengths.append(length)
        metric = self.metric_fn(trial.request_id, trial.hparams, length)
        self.send(Event("on_validation_completed", (trial.request_id, metric, length)))

    def _close(self, trial: SimulatedTrial) -> None:
        trial.closed = True
        trial.work.clear()
        self.send(Event("on_trial_closed", (trial.request_id,)))

    def _carry_out(self, operation: Operation) -> None:
        """Do what a controller does; operations it cannot carry out are left to the checks."""
        trial = self.run.trials.get(getattr(operation, "request_id", None))
        if isinstance(operation, Create) and trial is None:
            self.run.trials[operation.request_id] = SimulatedTrial(
                operation.request_id, operation.hparams, operation.checkpoint)
            self.send(Event("on_trial_created", (operation.request_id,)))
        elif isinstance(operation, ValidateAfter) and trial is not None and not trial.closed:
            trial.work.append(("validate", operation.length))
        elif isinstance(operation, Close) and trial is not None and not trial.closed:
            trial.work.append(("close", 0))


def drive(
    searcher: SearchMethod,
    metric_fn: MetricFn | None = None,
    exit_fn: ExitFn | None = None,
    rng: np.random.Generator | int | None = 0,
    max_events: int = 100_000,
) -> SearchRun:
    """Play a search to its end as the controller would, and record every event and operation.

    Trials with work advance one piece at a time in an order drawn from `rng`; `exit_fn` decides
    early exits (after one, the trial is also closed, as the controller does); `metric_fn`
    (default: `random_metric`) makes the validation metrics. The run ends at the first `Shutdown`,
    or when no trial has work left.

    >>> from hpt_core import create_searcher
    >>> searcher = create_searcher({"searcher": {"name": "random", "metric": "loss", "max_length": 4,
    ...                                          "max_trials": 3}, "hyperparameters": {"lr": 0.1}})
    >>> run = drive(searcher)
    >>> len(run.trials), run.shutdowns
    (3, [Shutdown(failure=False, cancel=False)])
    """
    if metric_fn is None:
        metric_fn = random_metric(searcher.config.metric)
    scheduler = np.random.default_rng(rng)
    controller = _SimulatedController(searcher, metric_fn, exit_fn)
    controller.send(Event("initial_operations"))
    while not controller.run.shutdowns:
        busy = controller.busy_trials()
        if not busy:
            break
        if len(controller.run.steps) >= max_events:
            raise ConformanceError(f"the search did not end within {max_events} events "
                                   f"({len(controller.run.trials)} trials created)")
        controller.advance(busy[int(scheduler.integers(len(busy)))])
    return controller.run


def random_metric(name: str, seed: int = 0) -> MetricFn:
    """Validation metrics `{name: uniform [0, 1)}`, a pure function of (seed, request id, length)."""

    def metric(request_id: int, hparams: Mapping[str, Any], length: int) -> dict[str, float]:
        return {name: float(np.random.default_rng([seed, request_id, length]).random())}

    return metric


def constant_metric(name: str, value: float = 1.0) -> MetricFn:
    """The same metric for every trial: every ranking is decided by ties."""

    def metric(request_id: int, hparams: Mapping[str, Any], length: int) -> dict[str, float]:
        return {name: value}

    return metric


def random_exits(probability: float, seed: int = 0, reasons: Sequence[ExitedReason] = tuple(ExitedReason)) -> ExitFn:
    """Exit with `probability` before each validation, for a reason drawn from `reasons`.

    A pure function of (seed, request id, length), so replays see the same exits.
    """

    def exit_early(request_id: int, length: int) -> ExitedReason | None:
        draw = np.random.default_rng([seed, request_id, length, 1])
        if draw.random() >= probability:
            return None
        return reasons[int(draw.integers(len(reasons)))]

    return exit_early


def replay(searcher: SearchMethod, events: Sequence[Event]) -> list[Step]:
    """Send recorded events to a search method; the steps it answers with."""
    steps = []
    for event in events:
        operations = event.send(searcher)
        steps.append(Step(event, operations, searcher.progress()))
    return steps


# --- the checks --------------------------------------------------------------------------------


def check_initial_operations_create_a_trial(run: SearchRun) -> None:
    first = run.steps[0]
    if not any(isinstance(operation, Create) for operation in first.operations):
        raise ConformanceError(f"initial_operations() must create at least one trial, got {first.operations}")


def check_operations_target_open_trials(run: SearchRun) -> None:
    """Creates use fresh ids; ValidateAfter names a created, open trial and never asks for less; Close an unclosed one."""
    created: set[int] = set()
    exited: set[int] = set()
    closed: set[int] = set()
    requested: dict[int, int] = {}
    for step in run.steps:
        if step.event.name == "on_trial_exited_early":
            exited.add(step.event.args[0])
        if step.event.name == "on_trial_closed":
            closed.add(step.event.args[0])
        for operation in step.operations:
            where = f"{operation} in answer to {step.event}"
            if isinstance(operation, Create):
                if operation.request_id in created:
                    raise ConformanceError(f"request id {operation.request_id} was created twice ({where})")
                created.add(operation.request_id)
            elif isinstance(operation, ValidateAfter):
                _check_trial_is_open(operation.request_id, created, exited | closed, where)
                _check_length(operation, requested.get(operation.request_id, 0), where)
                requested[operation.request_id] = operation.length
            elif isinstance(operation, Close) and (operation.request_id not in created or operation.request_id in closed):
                raise ConformanceError(f"Close must name a created trial that is not closed yet ({where})")


def _check_trial_is_open(request_id: int, created: set[int], ended: set[int], where: str) -> None:
    if request_id not in created:
        raise ConformanceError(f"ValidateAfter must name a trial created before ({where})")
    if request_id in ended:
        raise ConformanceError(f"ValidateAfter must name an open trial, but it has exited or closed ({where})")


def _check_length(operation: ValidateAfter, previous: int, where: str) -> None:
    if not isinstance(operation.length, int) or isinstance(operation.length, bool) or operation.length < 1:
        raise ConformanceError(f"ValidateAfter.length must be a positive int, got {operation.length!r} ({where})")
    if operation.length < previous:
        raise ConformanceError(f"lengths asked of a trial must never decrease: {previous} before, "
                               f"{operation.length} now ({where})")


def check_single_shutdown_after_every_trial_closed(run: SearchRun) -> None:
    """Exactly one Shutdown, the last operation, when every created trial has closed."""
    if not run.shutdowns:
        raise ConformanceError(f"the search must end with a Shutdown, but it stopped with trials "
                               f"{run.open_trials()} open and nothing asked of them")
    if len(run.shutdowns) > 1:
        raise ConformanceError(f"exactly one Shutdown must be emitted, got {run.shutdowns}")
    created: set[int] = set()
    closed: set[int] = set()
    for step in run.steps:
        if step.event.name == "on_trial_closed":
            closed.add(step.event.args[0])
        for index, operation in enumerate(step.operations):
            if isinstance(operation, Create):
                created.add(operation.request_id)
            if isinstance(operation, Shutdown):
                if created - closed:
                    raise ConformanceError(f"Shutdown came before trials {sorted(created - closed)} closed "
                                           f"(in answer to {step.event})")
                if index != len(step.operations) - 1:
                    raise ConformanceError(f"nothing may follow Shutdown, got {step.operations[index + 1:]}")


def check_progress(run: SearchRun) -> None:
    """progress() stays in [0, 1] and is 1.0 once the search has shut down."""
    for step in run.steps:
        if not 0.0 <= step.progress <= 1.0:
            raise ConformanceError(f"progress() must lie in [0, 1], got {step.progress} after {step.event}")
    for step in run.steps:
        if any(isinstance(operation, Shutdown) for operation in step.operations) and step.progress != 1.0:
            raise ConformanceError(f"progress() must be 1.0 after Shutdown, got {step.progress} after {step.event}")


def check_state_round_trip(make_searcher: SearcherFactory, run: SearchRun, cuts: int = 12) -> None:
    """At any point, a method restored from its JSON state answers the remaining events exactly as the original."""
    for cut in _cut_points(len(run.steps), cuts):
        original = make_searcher()
        replay(original, run.events[:cut])
        state = json.loads(json.dumps(original.state_dict()))
        restored = make_searcher()
        restored.load_state_dict(state)
        for expected, got in zip(run.steps[cut:], replay(restored, run.events[cut:])):
            if got != expected:
                raise ConformanceError(
                    f"after restoring the state saved at step {cut}, {expected.event} gave "
                    f"{got.operations} (progress {got.progress}) instead of {expected.operations} "
                    f"(progress {expected.progress})")


def _cut_points(steps: int, cuts: int) -> list[int]:
    return sorted({int(point) for point in np.linspace(0, steps, num=min(cuts, steps + 1))})


def check_determinism(first: SearchRun, second: SearchRun) -> None:
    """Two runs of the same method and seed, fed the same way, are identical."""
    for index, (expected, got) in enumerate(zip(first.steps, second.steps)):
        if got != expected:
            raise ConformanceError(f"the same seed must give the same search: step {index} ({expected.event}) "
                                   f"gave {got.operations} the second time, {expected.operations} the first")
    if len(first.steps) != len(second.steps):
        raise ConformanceError(f"the same seed must give the same search: {len(first.steps)} steps, "
                               f"then {len(second.steps)}")


def check_outcome(run: SearchRun, failure: bool, cancel: bool) -> None:
    expected = Shutdown(failure=failure, cancel=cancel)
    if run.shutdowns != [expected]:
        reasons = sorted({str(trial.exit_reason) for trial in run.trials.values()})
        raise ConformanceError(f"expected {expected} when trials exited with {reasons}, got {run.shutdowns}")


# --- the pytest suite --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """How the simulated trials behave: their metrics, their early exits, the order events arrive in."""

    name: str
    exit_probability: float = 0.0
    exit_reasons: tuple[ExitedReason, ...] = tuple(ExitedReason)
    tied_metrics: bool = False
    seed: int = 0

    def run(self, searcher: SearchMethod) -> SearchRun:
        metric = searcher.config.metric
        metric_fn = constant_metric(metric) if self.tied_metrics else random_metric(metric, self.seed)
        exit_fn = random_exits(self.exit_probability, self.seed, self.exit_reasons) if self.exit_probability else None
        return drive(searcher, metric_fn, exit_fn, rng=self.seed)


SCENARIOS = (
    Scenario("no-exits"),
    Scenario("early-exits", exit_probability=0.3, seed=1),
    Scenario("tied-metrics", exit_probability=0.1, tied_metrics=True, seed=2),
    Scenario("other-order", exit_probability=0.05, seed=3),
)

OUTCOMES = (
    (Scenario("every-trial-errors", exit_probability=1.0, exit_reasons=(ExitedReason.ERRORED,)), True, False),
    (Scenario("every-trial-cancelled", exit_probability=1.0, exit_reasons=(ExitedReason.USER_CANCELED,)), False, True),
    (Scenario("every-trial-completes"), False, False),
)


class SearchMethodConformance:
    """Tests that every search method must pass. Subclass it and define `make_searcher()`.

    `make_searcher()` returns a fresh method, built the same way (same config, same seed) each
    time. To run the suite over several configs, override the `searcher_factory` fixture instead
    (a parametrized fixture returning a zero-argument callable).
    """

    def make_searcher(self) -> SearchMethod:
        raise NotImplementedError("subclass SearchMethodConformance and return a fresh search method")

    @pytest.fixture
    def searcher_factory(self) -> SearcherFactory:
        return self.make_searcher

    @pytest.fixture(params=SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
    def scenario(self, request: pytest.FixtureRequest) -> Scenario:
        return request.param

    def test_initial_operations_create_a_trial(self, searcher_factory: SearcherFactory) -> None:
        check_initial_operations_create_a_trial(drive(searcher_factory()))

    def test_operations_target_open_trials(self, searcher_factory: SearcherFactory, scenario: Scenario) -> None:
        check_operations_target_open_trials(scenario.run(searcher_factory()))

    def test_single_shutdown_after_every_trial_closed(
        self, searcher_factory: SearcherFactory, scenario: Scenario
    ) -> None:
        check_single_shutdown_after_every_trial_closed(scenario.run(searcher_factory()))

    def test_progress(self, searcher_factory: SearcherFactory, scenario: Scenario) -> None:
        check_progress(scenario.run(searcher_factory()))

    def test_state_round_trip(self, searcher_factory: SearcherFactory, scenario: Scenario) -> None:
        check_state_round_trip(searcher_factory, scenario.run(searcher_factory()))

    def test_determinism(self, searcher_factory: SearcherFactory, scenario: Scenario) -> None:
        check_determinism(scenario.run(searcher_factory()), scenario.run(searcher_factory()))

    @pytest.mark.parametrize(("scenario", "failure", "cancel"), OUTCOMES,
                             ids=[outcome[0].name for outcome in OUTCOMES])
    def test_outcome(self, searcher_factory: SearcherFactory, scenario: Scenario, failure: bool, cancel: bool) -> None:
        check_outcome(scenario.run(searcher_factory()), failure, cancel)
