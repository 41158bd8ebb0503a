"""A logger plugin: every event of an experiment as a JSON line in a file; it can hold each event until a
file exists (a slow tracking server) and fail on reports (a broken one)."""

import json
import os
import time
from typing import Optional

from hpt_core.config import StrictBool, StrictStr
from hpt_core.loggers import Logger, LoggerOptions, hookimpl


class JournalLoggerOptions(LoggerOptions):
    """`loggers: {journal: {path: FILE, hold_until: FILE, fail_on_reports: true}}`."""

    path: StrictStr
    hold_until: Optional[StrictStr] = None
    fail_on_reports: StrictBool = False


class JournalLogger(Logger):
    name = "journal"
    options_model = JournalLoggerOptions

    def _write(self, event, **fields):
        while self.options.hold_until and not os.path.exists(self.options.hold_until):
            time.sleep(0.05)
        with open(self.options.path, "a") as journal:
            journal.write(json.dumps({"event": event, **fields}) + "\n")

    @hookimpl
    def hpt_experiment_started(self, experiment_id):
        if self.observes(experiment_id):
            self._write("experiment_started")

    @hookimpl
    def hpt_trial_started(self, experiment_id, trial_id):
        if self.observes(experiment_id):
            self._write("trial_started", trial_id=trial_id)

    @hookimpl
    def hpt_metrics_reported(self, experiment_id, trial_id, kind, epochs):
        if self.observes(experiment_id):
            self._write("metrics_reported", trial_id=trial_id, kind=kind, epochs=epochs)
            if self.options.fail_on_reports:
                raise ConnectionError("the tracking server is down")

    @hookimpl
    def hpt_trial_ended(self, experiment_id, trial_id, state):
        if self.observes(experiment_id):
            self._write("trial_ended", trial_id=trial_id, state=state)

    @hookimpl
    def hpt_experiment_ended(self, experiment_id, state):
        if self.observes(experiment_id):
            self._write("experiment_ended", state=state)


@hookimpl
def hpt_loggers():
    return [JournalLogger]
