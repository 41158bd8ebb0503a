"""An executor plugin: trials run as local processes, and every launch is written to a file of the user's."""

import json
from dataclasses import replace

from hpt_core import hookimpl
from hpt_core.config import ExecutorOptions, StrictStr
from hpt_core.executors import LocalExecutor


class JournalOptions(ExecutorOptions):
    """`executor: {type: journal, path: FILE, label: TEXT}`."""

    path: StrictStr
    label: StrictStr = "journal"


class JournalExecutor(LocalExecutor):
    """The local executor, writing one JSON line per launch to `executor.path` and giving each trial its
    `executor.label` as the variable EXAMPLE_LABEL."""

    name = "journal"
    options_model = JournalOptions

    def __init__(self, experiment_dir, model_dir, max_concurrent, options):
        super().__init__(experiment_dir, model_dir, max_concurrent)
        self.options = options

    @classmethod
    def for_experiment(cls, config, experiment_dir, model_dir, experiment_id):
        return cls(experiment_dir, model_dir, config.searcher.max_concurrent_trials, config.executor)

    def launch(self, spec):
        with open(self.options.path, "a") as journal:
            journal.write(json.dumps({"trial_id": spec.trial_id, "attempt": spec.attempt}) + "\n")
        super().launch(replace(spec, env={**spec.env, "EXAMPLE_LABEL": self.options.label}))


@hookimpl
def hpt_executors():
    return [JournalExecutor]
