"""Feeding a search method its events and checking every operation it returns before anyone acts on it.

The controller, the simulator and `preview` all talk to search methods through a `SearchDriver`,
so that the protocol's rules are written once. An operation is refused, with a `SearcherError`
naming the method, the event and the operation, when it

- is not an operation at all, or comes in something other than a list;
- creates a request id that exists, or warm-starts from a request id that does not;
- is a `Create` after the method's `Shutdown` (until `extend` reopens the search);
- names a request id that was never created (`ValidateAfter`, `Close`);
- asks a trial for less than it was asked before (a length that goes backwards) or for a length
  that is not a positive whole number;
- asks for work from a trial the method closed.

A method that raises is reported the same way, its exception chained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpt_core.errors import SearcherError
from hpt_core.operations import Close, Create, Operation, Shutdown, ValidateAfter
from hpt_core.searchers.base import SearchMethod


@dataclass
class Request:
    """What the method has asked of one request id so far."""

    parent: int | None = None
    target: int = 0
    closed: bool = False


class SearchDriver:
    """One search method behind the protocol's checks; `send(event, *args)` returns checked operations."""

    def __init__(self, searcher: SearchMethod) -> None:
        self.searcher = searcher
        self.requests: dict[int, Request] = {}
        self.shut_down = False

    @property
    def method(self) -> str:
        """The method's name as a user knows it (its class for a custom method)."""
        name = self.searcher.name
        return name if name and name != "custom" else type(self.searcher).__name__

    def send(self, event: str, *args: Any) -> list[Operation]:
        """Feed `event(*args)` to the method; its operations, each checked and noted, in order."""
        if event == "extend":
            self.shut_down = False
        call = f"{event}{tuple(args)!r}" if len(args) != 1 else f"{event}({args[0]!r})"
        try:
            operations = getattr(self.searcher, event)(*args)
        except Exception as error:
            raise SearcherError(f"search method {self.method!r} raised {type(error).__name__} in {call}: {error}") \
                from error
        if not isinstance(operations, list):
            raise SearcherError(f"search method {self.method!r} returned {operations!r} from {call}; "
                                "events must return a list of operations")
        for operation in operations:
            problem = self._problem(operation)
            if problem is not None:
                raise SearcherError(f"search method {self.method!r} asked for {operation!r} in reply to {call}, "
                                    f"but {problem}")
            self._note(operation)
        return operations

    def _problem(self, operation: Any) -> str | None:
        """What is wrong with `operation` given everything asked before (None if nothing is)."""
        if not isinstance(operation, (Create, ValidateAfter, Close, Shutdown)):
            return "that is not an operation (Create, ValidateAfter, Close or Shutdown)"
        if isinstance(operation, Shutdown):
            return None
        if isinstance(operation, Create):
            if self.shut_down:
                return "the method has already sent its Shutdown"
            if operation.request_id in self.requests:
                return f"request id {operation.request_id} was created before"
            if operation.checkpoint is not None and operation.checkpoint not in self.requests:
                return f"its checkpoint names request id {operation.checkpoint}, which was never created"
            return None
        request = self.requests.get(operation.request_id)
        if request is None:
            return f"request id {operation.request_id} was never created"
        if isinstance(operation, ValidateAfter):
            length = operation.length
            if isinstance(length, bool) or not isinstance(length, int) or length < 1:
                return "a length must be a whole number ≥ 1"
            if length < request.target:
                return f"it was asked to train to {request.target} before (a length must not go backwards)"
            if request.closed:
                return "the method closed that trial"
        return None

    def _note(self, operation: Operation) -> None:
        if isinstance(operation, Shutdown):
            self.shut_down = True
        elif isinstance(operation, Create):
            self.requests[operation.request_id] = Request(parent=operation.checkpoint)
        elif isinstance(operation, ValidateAfter):
            self.requests[operation.request_id].target = operation.length
        elif isinstance(operation, Close):
            self.requests[operation.request_id].closed = True

    def state_dict(self) -> dict[str, Any]:
        """The checks' memory, plain JSON (part of an experiment's snapshot)."""
        return {"shut_down": self.shut_down,
                "requests": {str(request_id): [request.parent, request.target, request.closed]
                             for request_id, request in self.requests.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shut_down = bool(state["shut_down"])
        self.requests = {int(request_id): Request(parent, target, closed)
                         for request_id, (parent, target, closed) in state["requests"].items()}
