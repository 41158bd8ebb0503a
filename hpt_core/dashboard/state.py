"""What the dashboard's views read from: storage, and what it keeps in memory to answer large experiments fast."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from hpt_core.dashboard.validation_index import ValidationIndex, ValidationIndexes
from hpt_core.space import flatten
from hpt_core.storage import ExperimentRecord, RecordNotFound, Storage
from hpt_core.storage import queries


@dataclass(frozen=True)
class SearcherMetric:
    """The metric an experiment's search method optimises, and its direction."""

    name: str
    smaller_is_better: bool

    @classmethod
    def of(cls, record: ExperimentRecord) -> SearcherMetric:
        searcher = record.config.get("searcher", {})
        return cls(searcher.get("metric", ""), searcher.get("smaller_is_better", True))


@dataclass(frozen=True)
class TrialHparams:
    """A trial's hyperparameters, flattened (dotted names), and the lower-case text a search looks in."""

    flat: dict[str, Any]
    text: str

    @classmethod
    def of(cls, hparams: dict[str, Any]) -> TrialHparams:
        flat = flatten(hparams)
        words = [*flat, *(value if isinstance(value, str) else json.dumps(value) for value in flat.values())]
        return cls(flat, "\n".join(words).lower())


class HparamsCache:
    """Trials' hyperparameters (they never change), read from storage once per trial."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._experiments: OrderedDict[int, dict[int, TrialHparams]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, storage: Storage, experiment_id: int, trial_ids: list[int]) -> dict[int, TrialHparams]:
        """trial id -> its hyperparameters, for `trial_ids` (trials of the experiment)."""
        with self._lock:
            known = self._experiments.setdefault(experiment_id, {})
            self._experiments.move_to_end(experiment_id)
            while len(self._experiments) > self.capacity:
                self._experiments.popitem(last=False)
            missing = [trial_id for trial_id in trial_ids if trial_id not in known]
        if missing:
            read = queries.trial_hparams(storage, experiment_id, None if len(missing) == len(trial_ids) else missing)
            with self._lock:
                known.update((trial_id, TrialHparams.of(hparams)) for trial_id, hparams in read.items())
        return {trial_id: known[trial_id] for trial_id in trial_ids if trial_id in known}


@dataclass
class DashboardState:
    """The storage a dashboard shows, with its in-memory indexes of validations and hyperparameters."""

    storage: Storage
    writable: bool = False
    indexes: ValidationIndexes = field(default_factory=ValidationIndexes)
    hparams: HparamsCache = field(default_factory=HparamsCache)

    def experiment(self, experiment_id: int) -> ExperimentRecord:
        """The experiment's record without its searcher state; RecordNotFound if there is none."""
        records = queries.experiment_records(self.storage, experiment_id)
        if not records:
            raise RecordNotFound(f"experiment {experiment_id!r} does not exist")
        return records[0]

    def validations(self, record: ExperimentRecord, metric: str | None = None) -> ValidationIndex:
        """The up-to-date index of `metric` (default: the searcher metric) of the experiment."""
        searcher_metric = SearcherMetric.of(record)
        return self.indexes.get(self.storage, record.id, metric or searcher_metric.name,
                                searcher_metric.smaller_is_better)
