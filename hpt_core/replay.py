"""Reading an experiment's record of searcher events and operations back, to resume it exactly.

The controller records every event before the search method sees it and every operation before
it takes effect. On resume, the search method (fresh, or loaded from the latest snapshot) is fed the
recorded events (those after the snapshot) in order; it must
reproduce the recorded operations (`ReplayMismatch` otherwise), and whatever it produces beyond
them at the last recorded event (the controller died while recording) is new work. Every other
event's operations were recorded in full, so there an operation beyond them is a mismatch too.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from hpt_core.errors import SearcherError
from hpt_core.operations import Operation, operation_to_dict

RESUME_WITH_THE_ORIGINAL = "resume the experiment with the version that began it"


class ReplayMismatch(SearcherError):
    """Replayed, the experiment did not reproduce its record: the search method (its code, or hpt's version) is
    not the one that recorded it, or the record is damaged. The controller stops before the record changes."""


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
            raise ReplayMismatch(f"record {step.seq}: hpt replayed {name}{args} where the record has "
                                 f"{step.name}{tuple(step.args)}\nhpt's version no longer replays this experiment as "
                                 f"the one that recorded it; {RESUME_WITH_THE_ORIGINAL}")
        produced_plain = [_plain(operation_to_dict(operation)) for operation in produced]
        recorded_plain = [_plain(operation) for operation in step.operations]
        unrecorded = produced_plain[len(recorded_plain):]
        if produced_plain[: len(recorded_plain)] != recorded_plain or (unrecorded and self.steps):
            raise ReplayMismatch(f"record {step.seq}: the search method produced other operations for "
                                 f"{name}{tuple(args)} than it recorded: recorded {recorded_plain}, produced "
                                 f"{produced_plain}\nthe search method (its code, or hpt's version) no longer behaves "
                                 f"as the one that recorded this experiment; {RESUME_WITH_THE_ORIGINAL}")
        return produced[len(recorded_plain):]


def _plain(value: Any) -> Any:
    """The JSON form of a value, as storage holds it, for comparing what was recorded with what is produced."""
    return json.loads(json.dumps(value, sort_keys=True))
