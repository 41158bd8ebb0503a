"""Reading an experiment's record of searcher events and operations back, to resume it exactly.

The controller records every event before the search method sees it and every operation before
it takes effect. On resume, the search method (fresh, or loaded from the latest snapshot) is fed the
recorded events (those after the snapshot) in order; it must
reproduce the recorded operations (`ReplayMismatch` otherwise), and whatever it produces beyond
them (the controller died while recording) is new work.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from hpt_core.operations import Operation, operation_to_dict


class ReplayMismatch(RuntimeError):
    """The search method, fed the recorded events, did not reproduce the recorded operations."""


@dataclass
class RecordedStep:
    """One recorded event and the operations recorded after it."""

    seq: int
    name: str
    args: list[Any]
    operations: list[dict[str, Any]] = field(default_factory=list)


class EventLog:
    """The recorded steps of an experiment, consumed in order while the search method is replayed."""

    def __init__(self, records: Iterable[Any]) -> None:
        self.steps: collections.deque[RecordedStep] = collections.deque()
        for record in records:
            if record.kind == "event":
                self.steps.append(RecordedStep(record.seq, record.payload["name"], list(record.payload["args"])))
            elif not self.steps:
                raise ReplayMismatch(f"record {record.seq} is an operation before any event")
            else:
                self.steps[-1].operations.append(record.payload)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def next_step(self) -> RecordedStep:
        return self.steps[0]

    def consume(self, name: str, args: tuple[Any, ...], produced: list[Operation]) -> list[Operation]:
        """Match the next recorded step; return the produced operations that were never recorded."""
        step = self.steps.popleft()
        if step.name != name or _plain(step.args) != _plain(list(args)):
            raise ReplayMismatch(f"record {step.seq}: expected event {step.name}{tuple(step.args)}, "
                                 f"but the controller replayed {name}{args}")
        produced_plain = [_plain(operation_to_dict(operation)) for operation in produced]
        recorded_plain = [_plain(operation) for operation in step.operations]
        if produced_plain[: len(recorded_plain)] != recorded_plain:
            raise ReplayMismatch(f"record {step.seq}: the search method no longer produces the recorded operations "
                                 f"for {name}{tuple(args)}: recorded {recorded_plain}, produced {produced_plain}")
        return produced[len(recorded_plain):]


def _plain(value: Any) -> Any:
    """The JSON form of a value, as storage holds it, for comparing what was recorded with what is produced."""
    return json.loads(json.dumps(value, sort_keys=True))
