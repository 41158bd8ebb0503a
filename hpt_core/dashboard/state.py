"""What the dashboard's views read from: storage, and what it keeps in memory to answer large experiments fast."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hpt_core.dashboard.validation_index import ValidationIndex, ValidationIndexes
from hpt_core.space import flatten
from hpt_core.storage import ExperimentRecord, RecordNotFound, Storage
from hpt_core.storage import queries

logger = logging.getLogger(__name__)


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


def experiment_key(record: ExperimentRecord) -> tuple[int, datetime]:
    """What tells experiments apart in memory: an id alone can come back (SQLite reuses the highest id once it
    is deleted), its creation time with it does not."""
    return record.id, record.created_at


class HparamsCache:
    """Trials' hyperparameters (they never change), read from storage once per trial."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._experiments: OrderedDict[tuple[int, datetime], dict[int, TrialHparams]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, storage: Storage, record: ExperimentRecord, trial_ids: list[int]) -> dict[int, TrialHparams]:
        """trial id -> its hyperparameters, for `trial_ids` (trials of the experiment)."""
        key = experiment_key(record)
        with self._lock:
            known = self._experiments.setdefault(key, {})
            self._experiments.move_to_end(key)
            while len(self._experiments) > self.capacity:
                self._experiments.popitem(last=False)
            missing = [trial_id for trial_id in trial_ids if trial_id not in known]
        if missing:
            read = queries.trial_hparams(storage, record.id, None if len(missing) == len(trial_ids) else missing)
            with self._lock:
                known.update((trial_id, TrialHparams.of(hparams)) for trial_id, hparams in read.items())
        return {trial_id: known[trial_id] for trial_id in trial_ids if trial_id in known}


class SearcherStates:
    """Experiments' searcher states, decoded once per change.

    The controller appends to the searcher log before it saves the state, and an experiment's progress or
    state changes after its last save; so (log length, progress, state) tells whether the state read last
    is still the stored one.
    """

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._states: OrderedDict[tuple[int, datetime], tuple[tuple[Any, ...], dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, storage: Storage, record: ExperimentRecord) -> dict[str, Any]:
        """The experiment's searcher state ({} before the search method first saved it)."""
        key = experiment_key(record)
        stamp = (queries.searcher_log_length(storage, record.id), record.progress, record.state)
        with self._lock:
            cached = self._states.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        state = queries.searcher_state(storage, record.id) or {}
        with self._lock:
            self._states[key] = (stamp, state)
            self._states.move_to_end(key)
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)
        return state


@dataclass
class DashboardState:
    """The storage a dashboard shows, with what it keeps in memory: indexes of validations, hyperparameters and
    searcher states."""

    storage: Storage
    writable: bool = False
    indexes: ValidationIndexes = field(default_factory=ValidationIndexes)
    hparams: HparamsCache = field(default_factory=HparamsCache)
    searcher_states: SearcherStates = field(default_factory=SearcherStates)
    stop_warming: threading.Event = field(default_factory=threading.Event)
    warmed: threading.Event = field(default_factory=threading.Event)

    def warm_up(self) -> None:
        """Read what the pages of the newest experiments need (validations, metric names, hyperparameters, ASHA's
        searcher state; as many experiments as the indexes keep, newest first), so that the first visit to them is
        as fast as the next. Stops early once `stop_warming` is set; sets `warmed` when done."""
        try:
            records = queries.experiment_records(self.storage)[::-1][:self.indexes.capacity]
            for record in records:
                if self.stop_warming.is_set():
                    return
                self.validations(record).names(self.storage)
                self.hparams.get(self.storage, record, [trial.id for trial in queries.trial_rows(self.storage,
                                                                                                 record.id)])
                if record.config.get("searcher", {}).get("name") == "adaptive_asha":
                    self.searcher_states.get(self.storage, record)
        except Exception:  # a page request reads the same again and reports what fails
            logger.warning("reading ahead for the dashboard failed", exc_info=True)
        finally:
            self.warmed.set()

    def experiment(self, experiment_id: int) -> ExperimentRecord:
        """The experiment's record without its searcher state; RecordNotFound if there is none."""
        records = queries.experiment_records(self.storage, experiment_id)
        if not records:
            raise RecordNotFound(f"experiment {experiment_id!r} does not exist")
        return records[0]

    def validations(self, record: ExperimentRecord, metric: str | None = None) -> ValidationIndex:
        """The up-to-date index of `metric` (default: the searcher metric) of the experiment."""
        searcher_metric = SearcherMetric.of(record)
        return self.indexes.get(self.storage, experiment_key(record), metric or searcher_metric.name,
                                searcher_metric.smaller_is_better)
