"""What the TPE sampler looks up at every proposal, kept up to date as trials are recorded.

A sampler history (`tpe.new_history()`) is plain JSON keyed by request id; ranking every length's
results and collecting every tried configuration from it at each proposal is a pass over every
trial (most of a proposal's time with 10,000 results). A `HistoryIndex` holds the same facts
ordered for lookup: per length the results sorted by (loss, request id), the configurations
tried, and the trials still running without a result. It is derived from the history alone (never
part of a search method's state): built from it in one pass, then updated with each record, so a
proposal reads the same facts the history holds.
"""

from __future__ import annotations

import bisect
from typing import Any


class HistoryIndex:
    """The ranked results, tried configurations and running trials of `state` (a sampler history)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.ranked: dict[int, list[tuple[float, int]]] = {}
        for request_id, losses in state["results"].items():
            for length, loss in losses.items():
                self.ranked.setdefault(int(length), []).append((loss, int(request_id)))
        for results in self.ranked.values():
            results.sort()
        self.tried = {tuple(config) for config in state["configs"].values()}
        self.running = {int(key) for key in state["configs"].keys() - state["ended"].keys() - state["results"].keys()}

    def created(self, request_id: int, config: list[float]) -> None:
        self.tried.add(tuple(config))
        self.running.add(request_id)

    def reported(self, request_id: int, length: int, loss: float, previous: float | None) -> None:
        """A result at `length` (replacing `previous`, the trial's earlier result there, if any)."""
        results = self.ranked.setdefault(length, [])
        if previous is not None:
            del results[bisect.bisect_left(results, (previous, request_id))]
        bisect.insort(results, (loss, request_id))
        self.running.discard(request_id)

    def forgotten(self, request_id: int, losses: dict[str, float]) -> None:
        """The trial's results (`losses` per length) no longer count."""
        for length, loss in losses.items():
            results = self.ranked[int(length)]
            del results[bisect.bisect_left(results, (loss, request_id))]

    def ended(self, request_id: int) -> None:
        self.running.discard(request_id)
