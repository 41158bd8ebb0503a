"""The search behind `hpt experiment create --test`: one short trial, then a second that restores its checkpoint.

Not a search users choose by name: the smoke test runs it through `searcher.name: custom`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hpt_core.config import PositiveInt, SearcherConfig
from hpt_core.operations import Close, Create, ExitedReason, Operation, ValidateAfter
from hpt_core.searchers.base import SearchMethod


class SmokeTestConfig(SearcherConfig):
    length: PositiveInt = 1


class SmokeTestSearch(SearchMethod):
    """Trial 1 trains the first configuration for `length` and checkpoints; trial 2 starts from that
    checkpoint (as a PBT child would) and trains `length` more; then the search ends."""

    name: ClassVar[str] = "smoke_test"
    config_model: ClassVar[type[SearcherConfig]] = SmokeTestConfig

    def __init__(self, config: SearcherConfig, space: Any, seed: int = 0) -> None:
        super().__init__(config, space, seed)
        self.closed: list[int] = []
        self.ended = False
        self.first_hparams: dict[str, Any] = {}

    def initial_operations(self) -> list[Operation]:
        request_id = self.new_request_id()
        self.first_hparams = self.sample_hparams()
        return [Create(request_id, self.first_hparams), ValidateAfter(request_id, self.config.length)]

    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        self.loss(metric)
        if request_id != 1:
            return [Close(request_id)]
        child = self.new_request_id()
        return [Close(1), Create(child, self.first_hparams, checkpoint=1), ValidateAfter(child, self.config.length)]

    def on_trial_exited_early(self, request_id: int, reason: ExitedReason | str) -> list[Operation]:
        self.record_exit(request_id, reason)
        return []

    def on_trial_closed(self, request_id: int) -> list[Operation]:
        self.closed.append(request_id)
        if set(self.created) <= set(self.closed) and not self.ended:
            self.ended = True
            return [self.shutdown()]
        return []

    def progress(self) -> float:
        return 1.0 if self.ended else len(self.closed) / 2
