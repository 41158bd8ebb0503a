"""What the experiment page needs of many validation reports, kept in memory and brought up to date cheaply.

A `ValidationIndex` holds, for one experiment and one metric, every trial's finite validations, its
best and latest, and the experiment's improvements over time. Each `refresh` first reads how many
validation reports the experiment has and the highest id among them (an index-only count), and then
reads only the reports it has not seen; should the count not add up (reports removed, or committed
out of id order), it reads them all again. So a page that polls a running experiment reads each
report once, and a finished one costs two small queries per request.

>>> index = ValidationIndex(experiment_id=1, metric="loss", smaller_is_better=True)
>>> from hpt_core.storage.queries import ValidationRow
>>> index.add([ValidationRow(1, 7, 10, 1, 0.5), ValidationRow(2, 8, 10, 1, 0.75), ValidationRow(3, 7, 20, 2, 0.25)])
>>> [(point.trial_id, point.value, point.total_batches) for point in index.improvements]
[(7, 0.5, 10), (7, 0.25, 30)]
>>> index.trials[7].best, index.trials[7].latest, index.value_at(7, length=15)
(0.25, 0.25, 0.5)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hpt_core.storage import MetricKind, Storage
from hpt_core.storage import queries
from hpt_core.storage.queries import ValidationRow


@dataclass(slots=True)
class TrialValidations:
    """One trial's finite validations of the metric, in the order reported."""

    best: float
    latest: float
    batches: int
    epochs: int
    series: list[tuple[int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Improvement:
    """A validation that beat every earlier one; `total_batches`: the training all trials had reported by then."""

    metric_id: int
    trial_id: int
    value: float
    batches: int
    total_batches: int


class ValidationIndex:
    """The finite validations of one metric of one experiment (see the module's docstring)."""

    def __init__(self, experiment_id: int, metric: str, smaller_is_better: bool) -> None:
        self.experiment_id = experiment_id
        self.metric = metric
        self.smaller_is_better = smaller_is_better
        self.lock = threading.RLock()
        """Held while the index changes; hold it while reading several of its fields."""
        self._reset()

    def _reset(self) -> None:
        self.reports_seen = 0
        self.last_id = 0
        self.trials: dict[int, TrialValidations] = {}
        self.improvements: list[Improvement] = []
        self.lengths: set[int] = set()
        self.total_batches = 0
        self._trained: dict[int, int] = {}
        self._metric_names: set[str] = set()
        self._names_up_to = 0
        self._ranking: list[int] | None = None

    def refresh(self, storage: Storage) -> ValidationIndex:
        """Read the reports made since the last refresh (all of them again if the count does not add up)."""
        with self.lock:
            count, highest = queries.validation_stamp(storage, self.experiment_id)
            if (count, highest) == (self.reports_seen, self.last_id):
                return self
            if count < self.reports_seen or highest < self.last_id:
                self._reset()
            rows = self._read(storage, highest)
            if self.reports_seen + len(rows) != count:
                self._reset()
                rows = self._read(storage, highest)
            self.add(rows)
        return self

    def _read(self, storage: Storage, highest: int) -> list[ValidationRow]:
        return queries.validations_after(storage, self.experiment_id, self.metric, after_id=self.last_id,
                                         up_to_id=highest)

    def names(self, storage: Storage) -> list[str]:
        """Every metric name in the validation reports seen so far (reading only those not yet looked at)."""
        with self.lock:
            if self._names_up_to < self.last_id:
                self._metric_names |= queries.metric_names(
                    storage, MetricKind.VALIDATION, experiment_id=self.experiment_id, after_id=self._names_up_to,
                    up_to_id=self.last_id)
                self._names_up_to = self.last_id
            return sorted(self._metric_names)

    def add(self, rows: Iterable[ValidationRow]) -> None:
        """Take in reports (in order of id)."""
        trials, trained, lengths, improvements = self.trials, self._trained, self.lengths, self.improvements
        smaller = self.smaller_is_better
        best = improvements[-1].value if improvements else None
        total, seen, last_id = self.total_batches, self.reports_seen, self.last_id
        for last_id, trial_id, batches, epochs, value in rows:
            seen += 1
            before = trained.get(trial_id, 0)
            if batches > before:
                total += batches - before
            trained[trial_id] = batches
            if value is None:
                continue
            lengths.add(batches)
            trial = trials.get(trial_id)
            if trial is None:
                trials[trial_id] = TrialValidations(value, value, batches, epochs, [(batches, value)])
            else:
                if value < trial.best if smaller else value > trial.best:
                    trial.best = value
                trial.latest, trial.batches, trial.epochs = value, batches, epochs
                trial.series.append((batches, value))
            if best is None or (value < best if smaller else value > best):
                best = value
                improvements.append(Improvement(last_id, trial_id, value, batches, total))
        self.total_batches, self.reports_seen, self.last_id = total, seen, last_id
        self._ranking = None

    def ranking(self) -> list[int]:
        """Trial ids with a validation, best first (the lower id among equals)."""
        if self._ranking is None:
            sign = 1.0 if self.smaller_is_better else -1.0
            self._ranking = sorted(self.trials, key=lambda trial_id: (sign * self.trials[trial_id].best, trial_id))
        return self._ranking

    def value_at(self, trial_id: int, length: int | None) -> float | None:
        """The trial's validation at the largest step <= `length` batches (the last of that step); None: its latest."""
        trial = self.trials.get(trial_id)
        if trial is None:
            return None
        if length is None:
            return trial.latest
        chosen: tuple[int, float] | None = None
        for batches, value in trial.series:
            if batches <= length and (chosen is None or batches >= chosen[0]):
                chosen = (batches, value)
        return None if chosen is None else chosen[1]


class ValidationIndexes:
    """The indexes of the experiments a dashboard shows: the most recently used ones are kept."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._indexes: OrderedDict[tuple[Any, ...], ValidationIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, storage: Storage, experiment: tuple[int, Hashable], metric: str,
            smaller_is_better: bool) -> ValidationIndex:
        """The index of `metric` of the experiment (its id, and what tells it from an earlier experiment of the
        same id), up to date; hold its `lock` while reading it."""
        key = (*experiment, metric)
        with self._lock:
            index = self._indexes.get(key)
            if index is None or index.smaller_is_better != smaller_is_better:
                index = self._indexes[key] = ValidationIndex(experiment[0], metric, smaller_is_better)
            self._indexes.move_to_end(key)
            while len(self._indexes) > self.capacity:
                self._indexes.popitem(last=False)
        return index.refresh(storage)
