"""Lengths in the search method's unit and in the trial's: one conversion, used by every driver of a search.

A search method counts in the unit of its `unit_length` (batches, epochs or records). Trials train
and report in batches and epochs; lengths in records reach a trial as epochs (rounded up, through
`records_per_epoch`).
"""

from __future__ import annotations

import math

from hpt_core.config import ExperimentConfig


class Units:
    """The conversions of one experiment."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.searcher_unit = config.searcher.unit_length.unit
        self.records_per_epoch = config.records_per_epoch
        longest = config.searcher.longest_length
        self.longest = longest.value if longest is not None else None
        self.full_length = config.searcher.unit_length.value

    @property
    def trial_unit(self) -> str:
        """The unit a trial is told its targets in: batches or epochs."""
        return "epochs" if self.searcher_unit == "records" else self.searcher_unit

    def to_trial(self, length: int) -> int:
        """A length in the search method's unit, in the trial's."""
        if self.searcher_unit == "records":
            return math.ceil(length / self.records_per_epoch)
        return length

    def to_searcher(self, batches: int, epochs: int) -> int:
        """How far a trial that reached (`batches`, `epochs`) is, in the search method's unit."""
        if self.searcher_unit == "batches":
            return batches
        if self.searcher_unit == "epochs":
            return epochs
        return epochs * self.records_per_epoch

    def longest_for_trial(self) -> int | None:
        """The most a trial may be asked to train, in its own unit (None when the search method does not say)."""
        return None if self.longest is None else self.to_trial(self.longest)
