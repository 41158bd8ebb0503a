"""Event hooks delivered as pluggy would call them, but with every implementation isolated, and off the
caller's thread while an experiment runs.

pluggy stops at the first implementation that raises; an observer of an experiment must not stop the
others, so `call_observers` calls each one itself, in pluggy's order (last registered first,
`tryfirst` before and `trylast` after the rest) and inside the hook's wrappers (`wrapper=True` and
old-style `hookwrapper=True`), logging any failure with the plugin's name.

`EventWorker` takes events from a queue and delivers them on a thread of its own, so a slow or failing
plugin (e.g. a logger whose server is slow) never delays the code that notified it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any, Callable, Iterator

import pluggy

logger = logging.getLogger(__name__)

DRAIN_NOTICE_SECONDS = 10.0
"""While an ending experiment waits for its plugins to take its last events, a line is logged this often."""
BACKLOG_NOTICE = 1000
"""When this many events wait for slow plugins, a line says so (once, until the plugins catch up)."""


def call_observers(hook: pluggy.HookCaller, kwargs: dict[str, Any]) -> None:
    """Call `hook`'s implementations with `kwargs` in pluggy's order, inside its wrappers; none can stop another."""
    implementations = list(reversed(hook.get_hookimpls()))  # pluggy calls the last of its list first
    wrappers = [impl for impl in implementations if impl.wrapper or impl.hookwrapper]
    observers = [impl for impl in implementations if not (impl.wrapper or impl.hookwrapper)]
    started = list(_enter_wrappers(hook.name, wrappers, kwargs))
    results = []
    for implementation in observers:
        with _logged_failure(implementation, hook.name):
            result = implementation.function(*_arguments(implementation, kwargs))
            if result is not None:
                results.append(result)
    for implementation, generator in reversed(started):
        with _logged_failure(implementation, hook.name):
            try:
                generator.send(pluggy.Result(results, None) if implementation.hookwrapper else results)
            except StopIteration:
                continue
            raise RuntimeError("a hook wrapper must yield exactly once")


def _enter_wrappers(hook_name: str, wrappers: list[pluggy.HookImpl],
                    kwargs: dict[str, Any]) -> Iterator[tuple[pluggy.HookImpl, Any]]:
    """Run each wrapper (outermost first) up to its `yield`; a wrapper that fails before it is left out."""
    for implementation in wrappers:
        with _logged_failure(implementation, hook_name):
            generator = implementation.function(*_arguments(implementation, kwargs))
            next(generator)
            yield implementation, generator


@contextlib.contextmanager
def _logged_failure(implementation: pluggy.HookImpl, hook_name: str) -> Iterator[None]:
    """Log an exception of a plugin's hook implementation with the plugin's name, and go on."""
    try:
        yield
    except Exception:
        logger.exception("the hpt plugin %r failed in %s", implementation.plugin_name, hook_name)


def _arguments(implementation: pluggy.HookImpl, kwargs: dict[str, Any]) -> list[Any]:
    return [kwargs[name] for name in implementation.argnames]


class EventWorker:
    """A queue of events and the thread that delivers them, in the order they were put, with `deliver`."""

    def __init__(self, deliver: Callable[[str, dict[str, Any]], None], name: str) -> None:
        self._deliver = deliver
        self._events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._behind = False
        self._thread.start()

    def put(self, hook_name: str, kwargs: dict[str, Any]) -> None:
        """Queue an event; returns at once."""
        self._events.put((hook_name, kwargs))
        waiting = self._events.qsize()
        if waiting >= BACKLOG_NOTICE and not self._behind:
            self._behind = True
            logger.warning("hpt plugins (loggers) are slow: %d events wait for them; the trials go on", waiting)
        elif waiting < BACKLOG_NOTICE // 2:
            self._behind = False

    def close(self) -> None:
        """Deliver every event queued so far, then stop the thread."""
        self._events.put(None)
        while self._thread.is_alive():
            self._thread.join(DRAIN_NOTICE_SECONDS)
            if self._thread.is_alive():
                logger.warning("still handing %d events to hpt plugins (loggers) before the experiment ends",
                               self._events.qsize())

    def _run(self) -> None:
        while (event := self._events.get()) is not None:
            hook_name, kwargs = event
            try:
                self._deliver(hook_name, kwargs)
            except Exception:  # call_observers logs each plugin's failure; this is hpt's own
                logger.exception("could not deliver %s to the hpt plugins", hook_name)
