"""Preview a search without running anything: how many trials train to which length.

`preview(searcher)` drives a search method to its Shutdown the way the controller would, with
made-up metrics: Creates are carried out in order, work in flight (ValidateAfter) is answered
first in, first out, and each trial reports one fixed metric at every length, drawn for it from a
private generator seeded 0 (one draw per request id, in creation order), like Determined's
`det preview-search`. `Preview.render()` is the table that `hpt preview CONFIG` prints.

>>> from hpt_core import create_searcher
>>> searcher = create_searcher({"searcher": {"name": "random", "metric": "loss", "max_length": {"epochs": 5},
...                                          "max_trials": 3}, "hyperparameters": {"lr": 0.1}})
>>> print(preview(searcher).render())
Trials | Training length
-------+----------------
     3 | 5 epochs
<BLANKLINE>
Total: 3 trials, 15 epochs of training
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from hpt_core.errors import SearcherError
from hpt_core.lifecycle import SearchDriver
from hpt_core.operations import Close, Create, Operation, Shutdown, ValidateAfter
from hpt_core.searchers.base import SearchMethod

PREVIEW_SEED = 0
MAX_OPERATIONS = 1_000_000
_SINGULAR_UNITS = {"batches": "batch", "epochs": "epoch", "records": "record"}


@runtime_checkable
class BracketedSearch(Protocol):
    """A search method that runs in brackets (e.g. adaptive ASHA): the preview groups by bracket."""

    def brackets(self) -> Sequence[Any]: ...

    def placements(self) -> dict[int, Any]: ...


@dataclass(frozen=True)
class PreviewGroup:
    """The trials of one group (one bracket, or the whole search): rows of (trials, length)."""

    title: str
    rows: tuple[tuple[int, int], ...]

    @property
    def trials(self) -> int:
        return sum(count for count, _ in self.rows)

    @property
    def total_length(self) -> int:
        return sum(count * length for count, length in self.rows)


@dataclass(frozen=True)
class Preview:
    """How many trials a search trains to which length, per group, with totals."""

    groups: tuple[PreviewGroup, ...]
    unit: str

    @property
    def trials(self) -> int:
        return sum(group.trials for group in self.groups)

    @property
    def total_length(self) -> int:
        """The training length summed over every trial."""
        return sum(group.total_length for group in self.groups)

    def render(self) -> str:
        """A plain-text table per group ("Trials | Training length") and the totals."""
        blocks = [self._render_group(group) for group in self.groups]
        trials = f"{self.trials} trial{'s' * (self.trials != 1)}"
        totals = f"Total: {trials}, {_amount(self.total_length, self.unit)} of training"
        return "\n\n".join([*blocks, totals])

    def _render_group(self, group: PreviewGroup) -> str:
        header, length_header = "Trials", "Training length"
        lengths = [_amount(length, self.unit) for _, length in group.rows]
        count_width = max([len(header), *(len(str(count)) for count, _ in group.rows)])
        length_width = max([len(length_header), *map(len, lengths)])
        lines = [group.title] if group.title else []
        lines += [f"{header:<{count_width}} | {length_header}", f"{'-' * count_width}-+-{'-' * length_width}"]
        lines += [f"{count:>{count_width}} | {length}" for (count, _), length in zip(group.rows, lengths)]
        return "\n".join(lines)


def preview(searcher: SearchMethod, max_operations: int = MAX_OPERATIONS) -> Preview:
    """Run `searcher` to its Shutdown with made-up metrics and count the training it asks for.

    Raises `SearcherError` if the method stops asking for anything before its Shutdown, asks
    for more than `max_operations` operations, or breaks the protocol (`lifecycle.SearchDriver`).
    """
    lengths = _simulate(searcher, max_operations)
    unit = searcher.config.unit_length.unit if searcher.config.longest_length is not None else "units"
    return Preview(group_lengths(searcher, lengths), unit)


def _simulate(searcher: SearchMethod, max_operations: int) -> dict[int, int]:
    """Drive the method to Shutdown; return each trial's training length (0 if it never trained)."""
    driver = SearchDriver(searcher)
    metric_rng = np.random.default_rng(PREVIEW_SEED)
    metrics: dict[int, float] = {}
    lengths: dict[int, int] = {}
    pending: deque[Operation] = deque(driver.send("initial_operations"))
    in_flight: deque[ValidateAfter] = deque()
    carried_out = 0
    while True:
        if not pending:
            if not in_flight:
                raise SearcherError(f"{driver.method} stopped before its Shutdown")
            work = in_flight.popleft()
            lengths[work.request_id] = max(lengths[work.request_id], work.length)
            pending.extend(driver.send("on_validation_completed", work.request_id, metrics[work.request_id],
                                       work.length))
            continue
        operation = pending.popleft()
        carried_out += 1
        if carried_out > max_operations:
            raise SearcherError(f"the search asked for more than {max_operations} operations without a Shutdown")
        if isinstance(operation, Shutdown):
            return lengths
        if isinstance(operation, Create):
            metrics[operation.request_id] = float(metric_rng.random())
            lengths[operation.request_id] = 0
            pending.extend(driver.send("on_trial_created", operation.request_id))
        elif isinstance(operation, ValidateAfter):
            in_flight.append(operation)
        elif isinstance(operation, Close):
            pending.extend(driver.send("on_trial_closed", operation.request_id))


def group_lengths(searcher: SearchMethod, lengths: dict[int, int]) -> tuple[PreviewGroup, ...]:
    """The trials' training lengths (per request id) as table rows: one group per bracket of a
    `BracketedSearch`, else one untitled group."""
    if not isinstance(searcher, BracketedSearch):
        return (PreviewGroup("", _rows(lengths.values())),)
    placements = searcher.placements()
    groups = []
    for index, plan in enumerate(searcher.brackets()):
        members = [length for request_id, length in lengths.items() if placements[request_id].bracket == index]
        title = (f"Bracket {index + 1} of {len(searcher.brackets())}: {plan.num_rungs} rung"
                 f"{'s' * (plan.num_rungs != 1)}, {plan.max_trials} trials, {plan.max_concurrent_trials} at a time")
        groups.append(PreviewGroup(title, _rows(members)))
    return tuple(groups)


def _rows(lengths: Any) -> tuple[tuple[int, int], ...]:
    """(number of trials, length) per distinct training length, shortest first."""
    counts: dict[int, int] = {}
    for length in lengths:
        counts[length] = counts.get(length, 0) + 1
    return tuple((counts[length], length) for length in sorted(counts))


def _amount(length: int, unit: str) -> str:
    return f"{length} {_SINGULAR_UNITS.get(unit, unit) if length == 1 else unit}"
