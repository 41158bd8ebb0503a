"""`ScriptedSearch`: a search method that plays a fixed script, for tests of what drives search methods.

It answers `initial_operations()` with the operations it was given and every later event with
nothing: it never shuts down by itself, so a driver must notice that it stalls.

>>> from hpt_core.config import SearcherConfig
>>> from hpt_core.searchers import Create, ValidateAfter
>>> from hpt_core.space import Space
>>> from hpt_core.lifecycle import SearchDriver
>>> script = ScriptedSearch(SearcherConfig(name="scripted", metric="loss"), Space(),
...                         [Create(1, {}), ValidateAfter(1, 4)])
>>> [type(operation).__name__ for operation in SearchDriver(script).send("initial_operations")]
['Create', 'ValidateAfter']
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from hpt_core.config import SearcherConfig
from hpt_core.operations import Operation
from hpt_core.searchers.base import SearchMethod
from hpt_core.space import Space


class ScriptedSearch(SearchMethod):
    """Starts with `operations`, then asks for nothing more."""

    name: ClassVar[str] = "scripted"

    def __init__(self, config: SearcherConfig, space: Space, operations: Sequence[Any], seed: int = 0) -> None:
        super().__init__(config, space, seed)
        self.operations = list(operations)

    def initial_operations(self) -> list[Operation]:
        return list(self.operations)

    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        return []

    def on_trial_closed(self, request_id: int) -> list[Operation]:
        return []

    def progress(self) -> float:
        return 0.0
