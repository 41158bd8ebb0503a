"""The live view of a running experiment: trials by state, the best metric so far, progress, elapsed time.

On a terminal it is a `rich` live panel; elsewhere (pipes, CI logs, `--quiet` off) it prints a
plain line whenever the picture changes, at most every few seconds. The executor's notices that come
up while the experiment runs (e.g. that trials now start cold) are printed as they come.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from hpt_core.labels import trial_label

STATES = ("PENDING", "RUNNING", "PAUSED", "COMPLETED", "CANCELED", "ERROR")
PLAIN_LINE_SECONDS = 5.0


def summary_line(summary: dict[str, Any], metric: str, starts: str = "") -> str:
    """One line: `running 2 | paused 1 | completed 5 | best val_loss 0.123 (trial 24 (#4)) | 6 warm, 2 cold starts |
    40% | 0:01:12` (`starts`: the executor's `start_summary()`, left out when empty)."""
    states = summary["states"]
    parts = [f"{state.lower()} {states[state]}" for state in STATES if states.get(state)]
    best = summary["best"]
    parts.append(f"best {metric} {_best(best)}" if best else f"best {metric} -")
    parts += [starts] if starts else []
    parts.append(f"{summary['progress']:.0%}")
    parts.append(_clock(summary["elapsed"]))
    return " | ".join(parts)


class ProgressView:
    """Shows a controller's summary while the experiment runs."""

    def __init__(self, experiment_id: int, metric: str, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.experiment_id = experiment_id
        self.metric = metric
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self._live: Live | None = None
        self._last_line = ""
        self._last_printed = 0.0
        if not quiet and self.stream.isatty():
            self._live = Live(console=Console(file=self.stream, markup=False), refresh_per_second=4, transient=False)
            self._live.start()

    def update(self, controller: Any) -> None:
        for notice in [] if self.quiet else controller.executor.notices():
            if self._live is not None:
                self._live.console.print(notice)  # above the live panel
            else:
                print(notice, file=self.stream, flush=True)
        summary = controller.summary()
        if self._live is not None:
            self._live.update(self._table(summary, controller.executor.start_summary()))
            return
        line = summary_line(summary, self.metric, controller.executor.start_summary())
        changed = _without_clock(line) != _without_clock(self._last_line)
        if not self.quiet and changed and time.monotonic() - self._last_printed >= PLAIN_LINE_SECONDS:
            print(f"experiment {self.experiment_id}: {line}", file=self.stream, flush=True)
            self._last_line, self._last_printed = line, time.monotonic()

    def close(self, controller: Any) -> None:
        if self._live is not None:
            self._live.update(self._table(controller.summary(), controller.executor.start_summary()))
            self._live.stop()
        elif not self.quiet:
            line = summary_line(controller.summary(), self.metric, controller.executor.start_summary())
            print(f"experiment {self.experiment_id}: {line}",
                  file=self.stream, flush=True)

    def _table(self, summary: dict[str, Any], starts: str) -> Table:
        table = Table(title=f"experiment {self.experiment_id}", show_header=True)
        for state in STATES:
            table.add_column(state.lower(), justify="right")
        table.add_column(f"best {self.metric}")
        table.add_column("starts")
        table.add_column("progress", justify="right")
        table.add_column("elapsed", justify="right")
        best = summary["best"]
        table.add_row(
            *(str(summary["states"].get(state, 0)) for state in STATES),
            _best(best) if best else "-",
            starts or "-",
            f"{summary['progress']:.0%}",
            _clock(summary["elapsed"]),
        )
        return table


def _best(best: dict[str, Any]) -> str:
    return f"{best['value']:.6g} (trial {trial_label(best['trial_id'], best['trial_number'])})"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _without_clock(line: str) -> str:
    return line.rsplit(" | ", 1)[0]
